"""The wire contract: API request/response models, problem+json errors, the OpenAPI document."""
