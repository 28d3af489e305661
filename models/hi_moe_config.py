"""Hi-MoE's configuration: the modalities it takes (``ModalitySpec``), its sizes, the presets
per data set, and the aligner inputs it declares (``models/cards/hi_moe.md`` says why each).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from core.prediction import AFFECT_DIMENSIONS
from core.streams import Modality
from core.window import FrameInput, ModelInputs, NumericInput
from models.config_checks import check_fractions, check_sizes

SIGNAL, FRAMES = "signal", "frames"
ROUTERS = ("attention", "diff-attention")
FUSIONS = ("attention-pool", "attention-concat")


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ModalitySpec:
    """One input of the model, as it arrives per sample (no batch axis).

    ``signal``: ``(channels, samples)`` of a sampled stream at ``rate`` Hz.
    ``frames``: ``(samples, H, W)``, a grayscale frame stack (``channels`` = 1),
    ``samples`` frames spread over ``window_s`` seconds.
    ``modality`` is the core ``Modality`` the aligner binds the input to.
    """

    name: str
    channels: int
    samples: int
    rate: float = 0.0
    kind: str = SIGNAL
    frame_shape: tuple[int, int] | None = None
    modality: str = ""
    window_s: float = 0.0  # 0: samples / rate

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"modality name {self.name!r} must be a Python identifier")
        if self.kind not in (SIGNAL, FRAMES):
            raise ValueError(f"modality {self.name!r}: kind {self.kind!r} is not signal|frames")
        if self.channels < 1 or self.samples < 1:
            raise ValueError(f"modality {self.name!r}: channels and samples must be >= 1")
        if self.kind == FRAMES:
            if self.frame_shape is None or len(self.frame_shape) != 2:
                raise ValueError(f"modality {self.name!r}: frames need frame_shape (H, W)")
            object.__setattr__(self, "frame_shape", tuple(int(s) for s in self.frame_shape))
        modality = self.modality or (Modality.FRAMES if self.kind == FRAMES else self.name.upper())
        if modality not in Modality.__members__.values():
            if self.modality:
                raise ValueError(
                    f"modality {self.name!r}: {self.modality!r} is not a core Modality"
                )
            modality = ""  # not bound to a stream type; model_inputs() will ask for one
        object.__setattr__(self, "modality", str(modality))

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.kind == FRAMES:
            assert self.frame_shape is not None
            return (self.samples, *self.frame_shape)
        return (self.channels, self.samples)

    @property
    def duration_s(self) -> float:
        if self.window_s > 0:
            return self.window_s
        return self.samples / self.rate if self.rate > 0 else 0.0


def _signal(
    name: str, channels: int, rate: float, window_s: float, modality: str = ""
) -> ModalitySpec:
    return ModalitySpec(name, channels, round(rate * window_s), rate, SIGNAL, None, modality)


def _face(frames: int = 4, size: tuple[int, int] = (48, 64), window_s: float = 0.5) -> ModalitySpec:
    return ModalitySpec("face", 1, frames, frames / window_s, FRAMES, size, "FRAMES", window_s)


#: HiMoEConfig's sizes and the least each may be (no encoder layers: tokens as convolved)
_SIZES: dict[str, int] = {
    "d_model": 1,
    "n_steps": 1,
    "conv_width": 1,
    "encoder_layers": 0,
    "n_modality_experts": 1,
    "n_emotion_experts": 1,
    "expert_hidden": 1,
    "heads": 1,
    "router_dim": 1,
    "proj_dim": 0,
}
_NUMBERS = (
    "diff_lambda_init",
    "diff_lambda_max",
    "modality_aux_weight",
    "pearson_weight",
    "dropout",
    "temperature",
    "lambda_ntxent",
)


@dataclass(frozen=True)
class HiMoEConfig:
    """Architecture and loss hyperparameters: with the weights, enough to rebuild the model.

    ``modalities`` may be given as ``{name: (channels, samples)}`` or as
    ``ModalitySpec``s; it is stored as a tuple of ``ModalitySpec``.
    """

    modalities: tuple[ModalitySpec, ...]
    d_model: int = 64
    n_steps: int = 8  # sub-windows per window: the time steps t of the paper
    conv_width: int = 32
    encoder_layers: int = 1
    n_modality_experts: int = 4  # K
    n_emotion_experts: int = 6  # L
    expert_hidden: int = 128
    heads: int = 4
    router_dim: int = 16
    router: str = "attention"  # "attention" | "diff-attention"
    diff_lambda_init: float = 0.2  # Diff Transformer's lambda_init for a first layer
    diff_lambda_max: float = 0.8
    mask_missing_in_fusion: bool = True
    # eq. 4's Fuse: "attention-pool" (attention-weighted average of the modality tokens) or
    # "attention-concat" (attention-weighted modality tokens side by side, then projected)
    fusion: str = "attention-pool"
    proj_dim: int = 0  # 0: NT-Xent on the encoder features themselves (the paper); >0: a projection
    # > 0: each modality also predicts alone, a loss term only (ours; the card says why)
    modality_aux_weight: float = 0.0
    # > 0: L_emo also gets pearson_weight * (1 - Pearson r), the concat-fusion baseline's
    # MSE + (1 - r) recipe (ours; the paper's L_emo is MSE alone, so the default is 0)
    pearson_weight: float = 0.0
    dropout: float = 0.1
    temperature: float = 0.1
    lambda_ntxent: float = 0.1
    outputs: tuple[str, ...] = AFFECT_DIMENSIONS
    output_range: tuple[float, float] = (1.0, 9.0)
    binary_heads: bool = True

    def __post_init__(self) -> None:
        mods = self.modalities
        if isinstance(mods, dict):
            mods = tuple(
                v if isinstance(v, ModalitySpec) else ModalitySpec(k, int(v[0]), int(v[1]))
                for k, v in mods.items()
            )
        mods = tuple(m if isinstance(m, ModalitySpec) else ModalitySpec(**m) for m in mods)
        if not mods:
            raise ValueError("HiMoEConfig needs at least one modality")
        names = [m.name for m in mods]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names must be unique, got {names}")
        object.__setattr__(self, "modalities", mods)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "output_range", tuple(float(v) for v in self.output_range))
        if not self.outputs:
            raise ValueError("HiMoEConfig needs at least one output")
        if self.router not in ROUTERS:
            raise ValueError(f"router {self.router!r} is not one of {ROUTERS}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion {self.fusion!r} is not one of {FUSIONS}")
        check_sizes(self, _SIZES)
        for name in _NUMBERS:
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise ValueError(f"{name} must be a number, got {v!r}")
        check_fractions(self, ("dropout",))
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.lambda_ntxent < 0:
            raise ValueError(f"lambda_ntxent must be >= 0, got {self.lambda_ntxent}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        low, high = self.output_range
        if not high > low:
            raise ValueError(f"output_range {self.output_range} must be (low, high), low < high")
        if self.modality_aux_weight < 0:
            raise ValueError(f"modality_aux_weight must be >= 0, got {self.modality_aux_weight}")
        if self.pearson_weight < 0:
            raise ValueError(f"pearson_weight must be >= 0, got {self.pearson_weight}")
        if not 0.0 < self.diff_lambda_init < self.diff_lambda_max < 1.0:
            raise ValueError("need 0 < diff_lambda_init < diff_lambda_max < 1")

    # ----------------------------------------------------------------- presets
    @classmethod
    def deap(cls, window_s: float = 4.0, with_face: bool = False, **overrides: Any) -> HiMoEConfig:
        """DEAP ``data_preprocessed_python``: 40 channels at 128 Hz, labels V/A/D/L on 1-9."""
        rate = 128.0
        mods = [
            _signal("eeg", 32, rate, window_s),
            _signal("eog", 2, rate, window_s),
            _signal("emg", 2, rate, window_s),
            _signal("gsr", 1, rate, window_s, "EDA"),
            _signal("resp", 1, rate, window_s),
            _signal("ppg", 1, rate, window_s),
            _signal("temp", 1, rate, window_s),
        ]
        if with_face:
            mods.append(_face())
        return cls(tuple(mods), **overrides)

    @classmethod
    def dreamer(cls, window_s: float = 4.0, **overrides: Any) -> HiMoEConfig:
        """DREAMER: EEG 14 channels at 128 Hz, ECG 2 leads at 256 Hz, labels V/A/D on 1-5."""
        mods = (_signal("eeg", 14, 128.0, window_s), _signal("ecg", 2, 256.0, window_s))
        kw: dict[str, Any] = {
            "outputs": ("valence", "arousal", "dominance"),
            "output_range": (1.0, 5.0),
        }
        kw.update(overrides)
        return cls(mods, **kw)

    @classmethod
    def simulated(
        cls, window_s: float = 4.0, with_face: bool = False, **overrides: Any
    ) -> HiMoEConfig:
        """The affectlab virtual participant at the demo model's rates (registry)."""
        mods = [
            _signal("eeg", 32, 64.0, window_s),
            _signal("ecg", 1, 64.0, window_s),
            _signal("ppg", 1, 32.0, window_s),
            _signal("eda", 1, 8.0, window_s),
            _signal("resp", 1, 8.0, window_s),
            _signal("temp", 1, 2.0, window_s),
        ]
        if with_face:
            mods.append(_face())
        return cls(tuple(mods), **overrides)

    # ----------------------------------------------------------------- derived
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def model_inputs(
        self,
        model: str,
        hop_s: float = 0.5,
        allowed_lateness_s: float = 0.2,
        stale_after_s: float = 1.0,
    ) -> ModelInputs:
        """What the aligner must cut for this model, per modality."""
        inputs: dict[str, NumericInput | FrameInput] = {}
        for m in self.modalities:
            if not m.modality:
                raise ValueError(f"modality {m.name!r} names no core Modality to bind to")
            if m.kind == FRAMES:
                assert m.frame_shape is not None
                inputs[m.name] = FrameInput(
                    Modality(m.modality), m.duration_s, m.samples, m.frame_shape
                )
            else:
                inputs[m.name] = NumericInput(
                    Modality(m.modality), m.duration_s, m.rate, n_channels=m.channels
                )
        return ModelInputs(model, inputs, hop_s, allowed_lateness_s, stale_after_s)

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = [asdict(m) for m in self.modalities]
        return json.loads(json.dumps(d))  # tuples -> lists, so it round-trips through JSON

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HiMoEConfig:
        d = dict(d)
        mods = []
        for m in d.pop("modalities"):
            m = dict(m)
            if m.get("frame_shape") is not None:
                m["frame_shape"] = tuple(m["frame_shape"])
            mods.append(ModalitySpec(**m))
        return cls(tuple(mods), **d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HiMoEConfig:
        return cls.from_dict(json.loads(text))
