"""The teachers' inbox: folder layout, scanning, watching and uploads."""
