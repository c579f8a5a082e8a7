"""``config/simulator.yaml`` (optional): fleet sizes, fault probabilities, history interval.

Every key is optional; the defaults below are what the simulator uses when the file is absent.
The simulator reads it and ``ioc config check`` validates it (the models live in the core so
that the check needs no import of ``sensors/``); errors name file, line and key like every
other configuration file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ioc.config.base import Section
from ioc.config.loader import load_yaml, validate


class FleetSection(Section):
    per_10k_people: dict[str, float] = Field(
        default_factory=lambda: {
            "street_light": 6.4,
            "waste_bin": 4.4,
            "traffic": 1.7,
            "noise": 1.3,
            "air_quality": 0.6,
            "water_level": 0.7,
            "rainfall": 0.4,
        },
        description="Devices per 10,000 inhabitants, by device type (before class factors)",
    )
    minimum: dict[str, int] = Field(
        default_factory=lambda: {
            "street_light": 6,
            "waste_bin": 3,
            "traffic": 1,
            "noise": 1,
            "air_quality": 1,
            "water_level": 1,
            "rainfall": 1,
        },
        description="Devices at least, per ward and type (Hoàng Sa excepted)",
    )


class FaultsSection(Section):
    offline_per_day: float = Field(
        default=0.08, ge=0, le=4, description="Offline episodes per device per day"
    )
    stuck_per_day: float = Field(default=0.02, ge=0, le=1, description="Stuck-value episodes")
    skew_per_day: float = Field(default=0.02, ge=0, le=1, description="Clock-skew episodes")
    late_per_day: float = Field(default=0.03, ge=0, le=4, description="Late-batch episodes")
    spike_per_reading: float = Field(
        default=0.0005, ge=0, le=0.1, description="Valid (in-range) spikes per reading"
    )
    out_of_range_per_reading: float = Field(
        default=0.0002, ge=0, le=0.1, description="Out-of-range readings (rejected) per reading"
    )
    malformed_per_reading: float = Field(
        default=0.0002, ge=0, le=0.1, description="Malformed payloads (rejected) per reading"
    )
    future_skew_share: float = Field(
        default=0.1, ge=0, le=1, description="Share of skew episodes too far ahead (rejected)"
    )


class ApplicationsSection(Section):
    busiest_per_day: float = Field(
        default=280, ge=0, description="Arrivals on a working day at the busiest ward"
    )
    returned_share: float = Field(default=0.07, ge=0, le=1, description="Returned for supplements")
    cancelled_share: float = Field(default=0.02, ge=0, le=1, description="Cancelled")
    late_share: float = Field(default=0.04, ge=0, le=1, description="Completed after due")
    stuck_share: float = Field(
        default=0.015, ge=0, le=1, description="Left open far past due (overdue backlog)"
    )
    postal_share: float = Field(
        default=0.04, ge=0, le=1, description="Share of non-online applications sent by post"
    )


class SimulatorFile(Section):
    history_interval_s: float = Field(
        default=900, ge=60, description="Reading interval of --backfill history, seconds"
    )
    history_intervals: dict[str, float] = Field(
        default_factory=lambda: {"street_light": 3600.0, "waste_bin": 1800.0},
        description="History interval by device type where it differs (slow-changing types)",
    )
    fleet: FleetSection = Field(default_factory=FleetSection)
    faults: FaultsSection = Field(default_factory=FaultsSection)
    applications: ApplicationsSection = Field(default_factory=ApplicationsSection)


def load_simulator_settings(config_dir: Path) -> SimulatorFile:
    path = Path(config_dir) / "simulator.yaml"
    if not path.exists():
        return SimulatorFile()
    return validate(load_yaml(path), SimulatorFile)
