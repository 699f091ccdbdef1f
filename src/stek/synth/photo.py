"""The camera side of the synthetic pictures: lighting, colour temperature and sensor noise.

TEST DATA. The figures are chosen to look like an overhead camera above a grading line on an
ordinary day, not measured from one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Lighting:
    """How the scene was lit when the synthetic picture was taken."""

    brightness: float  # overall gain, 1.0 = as designed
    colour_temperature_k: int  # 3500 warm .. 6500 cool; 5500 is neutral
    gradient_strength: float  # 0 = even light, 0.35 = one side 35 % brighter than the other
    gradient_angle_deg: float  # direction in which the light gets brighter
    noise_sigma: float  # standard deviation of the sensor noise, in 0..255 units

    def as_metadata(self) -> dict[str, str]:
        return {f"lighting_{name}": f"{value:g}" for name, value in asdict(self).items()}


def random_lighting(rng: np.random.Generator) -> Lighting:
    return Lighting(
        brightness=round(float(rng.uniform(0.78, 1.18)), 3),
        colour_temperature_k=int(rng.integers(35, 66)) * 100,
        gradient_strength=round(float(rng.uniform(0.0, 0.35)), 3),
        gradient_angle_deg=round(float(rng.uniform(0, 360)), 1),
        noise_sigma=round(float(rng.uniform(1.5, 5.0)), 2),
    )


def expose(
    scene: NDArray[np.uint8], lighting: Lighting, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """The scene as the camera records it under `lighting`, with sensor noise."""
    height, width = scene.shape[:2]
    gains = _white_balance(lighting.colour_temperature_k) * lighting.brightness

    angle = np.deg2rad(lighting.gradient_angle_deg)
    across = np.linspace(-0.5, 0.5, width, dtype=np.float32) * np.float32(np.cos(angle))
    down = np.linspace(-0.5, 0.5, height, dtype=np.float32) * np.float32(np.sin(angle))
    light = 1.0 + np.float32(lighting.gradient_strength) * (down[:, None] + across[None, :])

    exposed = scene.astype(np.float32)
    exposed *= light[:, :, None]
    exposed *= gains
    exposed += rng.standard_normal(exposed.shape, dtype=np.float32) * lighting.noise_sigma
    return np.clip(exposed, 0, 255).astype(np.uint8)


def _white_balance(kelvin: int) -> NDArray[np.float32]:
    """Channel gains of light warmer (redder) or cooler (bluer) than neutral 5500 K."""
    cool = (kelvin - 5500) / 2000
    return np.array([1 - 0.12 * cool, 1.0, 1 + 0.15 * cool], dtype=np.float32)
