"""Settings read once from the environment that template.yaml gives each function."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Names of the resources a function talks to, and the limits it enforces.

    The endpoint of the AWS APIs is not here on purpose: boto3 reads the standard
    `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` variables, so LocalStack, MinIO or the
    embedded emulator are chosen the same way as with any other AWS tool.
    """

    model_config = SettingsConfigDict(env_prefix="STEK_", extra="ignore")

    raw_bucket: str = "stek-raw"
    models_bucket: str = "stek-models"
    artifacts_bucket: str = "stek-artifacts"
    catalog_table: str = "stek-catalog"
    events_table: str = "stek-events"
    idempotency_table: str = "stek-idempotency"
    training_queue_url: str = ""
    versions_queue_url: str = ""
    ingest_queue_url: str = ""
    training_dead_letter_queue_url: str = ""
    webhook_token: str = Field(default="", description="bearer token MinIO's webhook sends")
    max_upload_bytes: int = 40 * 1024 * 1024
    max_image_pixels: int = 100_000_000
    presign_expiry_s: int = 900
    event_ttl_days: int = 365
    max_import_bytes: int = Field(
        default=2 * 1024**3, description="unpacked size of one dataset import"
    )
    max_model_bytes: int = Field(default=256 * 1024**2, description="ONNX + external data")
    model_opset_min: int = 11
    model_opset_max: int = 23
    validation_max_images: int = Field(default=200, description="more go to a runner job")
    inference_cache_size: int = Field(default=4, description="ONNX sessions kept per process")
    training_lease_s: int = Field(default=120, description="how long a runner's job lease lasts")
    runner_cache_dir: str = Field(default="", description="local image cache of the GPU runner")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, validated on first use."""
    return Settings()
