"""Publishing what the engine built: packages and their signed catalogue (`packages`), and the
processed text and Chroma exports (`exports`), to the LAN folder, S3 and CloudFront."""
