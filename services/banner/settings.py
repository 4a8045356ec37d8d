from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.common.settings import ServiceSettings


class BannerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BANNER_", extra="ignore", frozen=True)

    # Signs the visitor cookie (last banner per campaign, visitor id for gift codes). Its length
    # and placeholder checks are the base class's, as for every secret.
    COOKIE_SECRET: SecretStr
    # The visitor cookie's lifetime, as its Max-Age and checked against its signed issue time on
    # every read (older: a new visitor). A banner view issues it again. Browsers cap Max-Age at
    # 400 days.
    COOKIE_MAX_AGE_S: int = Field(30 * 24 * 3600, ge=60, le=400 * 24 * 3600)
    # Mark the cookie Secure (sent over HTTPS only). Set it wherever clients reach the gateway
    # through TLS; off by default because the gateway this repository runs speaks plain HTTP, and
    # a Secure cookie set over HTTP is dropped, which would make every gift-code claim a 403.
    COOKIE_SECURE: bool = False
    # The datasets' images/ folders, searched in order (':'-separated, like PATH: one per dataset
    # served side by side); ids without a file get a generated image.
    IMAGES_DIR: Annotated[tuple[Path, ...], NoDecode] = ()
    # Fallback check for new sets when a Redis notification was missed.
    SETS_CHECK_INTERVAL_S: float = Field(30.0, gt=0, le=3600)
    IMAGE_CACHE_SIZE: int = Field(1024, ge=1)
    MAX_MINT: int = Field(100_000, ge=1)

    @field_validator("IMAGES_DIR", mode="before")
    @classmethod
    def _path_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(part) for part in value.split(os.pathsep) if part)
        return value
