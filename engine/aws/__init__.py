"""The AWS control plane: S3 publishing, CloudFront, DynamoDB jobs, the Lambda processor.

Every client is built in `clients.py` from settings, with short timeouts, so an offline school
never hangs on AWS; every feature degrades to local behaviour when AWS is unreachable.
"""
