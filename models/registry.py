"""Shipped models: their names, where their weights live, and what the demo models ask for.

The names are what session configs write (``[[models]] name = "hi-moe-sim"``);
everything else about a model (family, architecture, inputs, provenance) lives
in the metadata of its safetensors file, so a file copied elsewhere still loads.
Every shipped model is trained on simulated data by ``affectlab train-demo``
(``RETRAIN``); its card is ``models/cards/<file stem>.md``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.streams import Modality
from core.window import EventInput, EventRepresentation, FrameInput, ModelInputs, NumericInput

if TYPE_CHECKING:  # the configs import torch; only the functions below need them
    from models.hi_moe import HiMoEConfig
    from models.mco_e_net import MCOENetConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CARDS_DIR = Path(__file__).resolve().parent / "cards"

CONCAT_FUSION_SIM = "concat-fusion-sim"
HI_MOE_SIM = "hi-moe-sim"
MCO_E_NET_LITE_SIM = "mco-e-net-lite-sim"

#: shipped model name -> file under models/weights/
SHIPPED: dict[str, str] = {
    CONCAT_FUSION_SIM: "concat_fusion_sim.safetensors",
    HI_MOE_SIM: "hi_moe_sim.safetensors",
    MCO_E_NET_LITE_SIM: "mco_e_net_lite_sim.safetensors",
}

#: shipped model name -> the command that retrains it (documented in its card)
RETRAIN: dict[str, str] = {
    CONCAT_FUSION_SIM: "affectlab train-demo --model concat-fusion",
    HI_MOE_SIM: "affectlab train-demo --model hi-moe",
    MCO_E_NET_LITE_SIM: "affectlab train-demo --model mco-e-net-lite",
}

#: DEAP's 32 EEG channels in file order (REFERENCE 4); the demo model reads them by name,
#: so a device that orders them differently still feeds each to the right filter.
DEAP_EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip


def shipped_path(name: str) -> Path:
    """Where the weights of a shipped model live (whether or not the file exists)."""
    return WEIGHTS_DIR / SHIPPED[name]


def card_path(name: str) -> Path:
    """The model card of a shipped model."""
    return CARDS_DIR / (Path(SHIPPED[name]).stem + ".md")


def concat_fusion_sim_inputs(name: str = CONCAT_FUSION_SIM) -> ModelInputs:
    """What the demo model eats: 4 s of physiology, 0.5 s of eye frames and events.

    Rates are the lowest that keep what the simulated signals carry: EEG at 64 Hz
    keeps theta to beta (gamma is lost), ECG at 64 Hz keeps the R peaks' timing
    to 16 ms, EDA, breathing and temperature change slowly.
    """
    return ModelInputs(
        model=name,
        inputs={
            "eeg": NumericInput(Modality.EEG, 4.0, 64.0, DEAP_EEG_CHANNELS, 32),
            "ecg": NumericInput(Modality.ECG, 4.0, 64.0, n_channels=1),
            "ppg": NumericInput(Modality.PPG, 4.0, 32.0, n_channels=1),
            "eda": NumericInput(Modality.EDA, 4.0, 8.0, n_channels=1),
            "resp": NumericInput(Modality.RESP, 4.0, 8.0, n_channels=1),
            "temp": NumericInput(Modality.TEMP, 4.0, 2.0, n_channels=1),
            "frames": FrameInput(Modality.FRAMES, 0.5, 4, (48, 64)),
            "events": EventInput(
                Modality.EVENTS, 0.5, 4, 0.125, (48, 64), EventRepresentation.COUNT
            ),
        },
        hop_s=0.5,
        allowed_lateness_s=0.2,
        stale_after_s=1.0,
    )


def hi_moe_sim_config() -> HiMoEConfig:
    """Hi-MoE for the virtual participant's physiology, at the demo model's rates."""
    from models.hi_moe import HiMoEConfig

    return HiMoEConfig.simulated()


def hi_moe_sim_inputs(name: str = HI_MOE_SIM) -> ModelInputs:
    """``HiMoEConfig.simulated().model_inputs`` with the EEG channels named (DEAP's 32).

    Named channels make a device that orders them differently feed each to the
    right filter; they also make these inputs exactly the physiology inputs of
    concat-fusion-sim, so the two share cut windows when training.
    """
    inputs = hi_moe_sim_config().model_inputs(name)
    eeg = inputs.inputs["eeg"]
    assert isinstance(eeg, NumericInput)
    return replace(
        inputs, inputs={**inputs.inputs, "eeg": replace(eeg, channels=DEAP_EEG_CHANNELS)}
    )


def mco_e_net_lite_sim_config(frames_only: bool = False) -> MCOENetConfig:
    """MCO-E Net lite: 4 eye frames of 100 x 100 and 2-channel event counts per 33 ms slice."""
    from models.mco_e_net import MCOENetConfig

    return MCOENetConfig.lite(frames_only=frames_only)


def mco_e_net_lite_sim_inputs(
    name: str = MCO_E_NET_LITE_SIM, frames_only: bool = False
) -> ModelInputs:
    return mco_e_net_lite_sim_config(frames_only).model_inputs(name)
