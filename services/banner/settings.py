from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class BannerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BANNER_", extra="ignore", frozen=True)

    # Signs the visitor cookie (last banner per campaign, visitor id for gift codes).
    COOKIE_SECRET: SecretStr
    # The dataset's images/ folder; ids without a file (or no folder) get a generated image.
    IMAGES_DIR: Path | None = None
    # Fallback check for new sets when a Redis notification was missed.
    SETS_CHECK_INTERVAL_S: float = Field(30.0, gt=0, le=3600)
    IMAGE_CACHE_SIZE: int = Field(1024, ge=1)
    MAX_MINT: int = Field(100_000, ge=1)

    @field_validator("COOKIE_SECRET")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("BANNER_COOKIE_SECRET must be at least 16 characters")
        return value
