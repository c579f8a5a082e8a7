"""``wards.yaml``: the 94 wards and communes (phường, xã, đặc khu) of Thành phố Đà Nẵng."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ioc.config.base import Section

WardType = Literal["phường", "xã", "đặc khu"]


class Ward(Section):
    code: str = Field(description="Official administrative code (a string, e.g. '20194')")
    name: str = Field(description="Vietnamese name with its type prefix, e.g. 'Phường Hải Châu'")
    type: WardType = Field(description="phường (urban ward), xã (commune) or đặc khu")
    lat: float = Field(ge=-90, le=90, description="Centroid latitude, degrees")
    lon: float = Field(ge=-180, le=180, description="Centroid longitude, degrees")
    area_km2: float = Field(gt=0, description="Area in square kilometres")
    population: int | None = Field(default=None, ge=0, description="Population, when known")


class WardsFile(Section):
    source: dict[str, Any] | None = Field(default=None, description="Where each field came from")
    expected_count: int = Field(default=94, ge=1, description="How many units the city has")
    wards: list[Ward] = Field(description="One entry per ward or commune")
