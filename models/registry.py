"""Shipped models: their names, where their weights live, and what the demo model asks for.

The names are what session configs write (``[[models]] name = "concat-fusion-sim"``);
everything else about a model (architecture, inputs, provenance) lives in the
metadata of its safetensors file, so a file copied elsewhere still loads.
"""

from __future__ import annotations

from pathlib import Path

from core.streams import Modality
from core.window import EventInput, EventRepresentation, FrameInput, ModelInputs, NumericInput

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CARDS_DIR = Path(__file__).resolve().parent / "cards"

#: shipped model name -> file under models/weights/
SHIPPED: dict[str, str] = {
    "concat-fusion-sim": "concat_fusion_sim.safetensors",
}

CONCAT_FUSION_SIM = "concat-fusion-sim"

#: DEAP's 32 EEG channels in file order (REFERENCE 4); the demo model reads them by name,
#: so a device that orders them differently still feeds each to the right filter.
DEAP_EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip


def shipped_path(name: str) -> Path:
    """Where the weights of a shipped model live (whether or not the file exists)."""
    return WEIGHTS_DIR / SHIPPED[name]


def concat_fusion_sim_inputs(name: str = CONCAT_FUSION_SIM) -> ModelInputs:
    """What the demo model eats: 4 s of physiology, 0.5 s of eye frames and events.

    Rates are the lowest that keep what the simulated signals carry: EEG at 64 Hz
    keeps theta to beta (gamma is lost), ECG at 64 Hz keeps the R peaks' timing
    to 16 ms, EDA, breathing and temperature change slowly.
    """
    return ModelInputs(
        model=name,
        inputs={
            "eeg": NumericInput(Modality.EEG, 4.0, 64.0, DEAP_EEG_CHANNELS),
            "ecg": NumericInput(Modality.ECG, 4.0, 64.0),
            "ppg": NumericInput(Modality.PPG, 4.0, 32.0),
            "eda": NumericInput(Modality.EDA, 4.0, 8.0),
            "resp": NumericInput(Modality.RESP, 4.0, 8.0),
            "temp": NumericInput(Modality.TEMP, 4.0, 2.0),
            "frames": FrameInput(Modality.FRAMES, 0.5, 4, (48, 64)),
            "events": EventInput(
                Modality.EVENTS, 0.5, 4, 0.125, (48, 64), EventRepresentation.COUNT
            ),
        },
        hop_s=0.5,
        allowed_lateness_s=0.2,
        stale_after_s=1.0,
    )
