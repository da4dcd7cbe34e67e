"""The AWS side as an application: set-up and status, publishing to S3 and CloudFront, and the
Lambda processor. The adapters these use live in `engine.aws`."""
