"""Colours, fonts and the Qt style sheet of the dashboard: one place to tune the look."""

from __future__ import annotations

from core.streams import Modality

BACKGROUND = "#16181d"
PANEL = "#1f2229"
PANEL_BORDER = "#2c3039"
TEXT = "#e4e6eb"
TEXT_DIM = "#8d93a0"
ACCENT = "#4fa3ff"
GOOD = "#3ecf8e"
WARN = "#f5b942"
BAD = "#ff5c5c"
IDLE = "#7c8391"
RECORD = "#ff4d4d"
MARKER_COLOUR = "#f5d142"

#: one hue per modality, so a stream has the same colour in every view
MODALITY_COLOURS: dict[Modality, str] = {
    Modality.EEG: "#6cb6ff",
    Modality.ECG: "#ff6b81",
    Modality.EDA: "#ffd166",
    Modality.PPG: "#ff9f43",
    Modality.RESP: "#5ee6c0",
    Modality.TEMP: "#c792ea",
    Modality.EMG: "#ff8fd0",
    Modality.EOG: "#9ad66b",
    Modality.IMU: "#a0aec0",
}
DEFAULT_COLOUR = "#b0b8c8"

#: affect dimensions in the time plot
AFFECT_COLOURS = {
    "valence": "#3ecf8e",
    "arousal": "#ff8c42",
    "dominance": "#6cb6ff",
    "liking": "#e879f9",
}

#: events over the APS frame: ON brightening, OFF darkening (RGB)
EVENT_ON_RGB = (80, 200, 255)
EVENT_OFF_RGB = (255, 90, 90)


def modality_colour(modality: Modality) -> str:
    return MODALITY_COLOURS.get(modality, DEFAULT_COLOUR)


STYLE_SHEET = f"""
QMainWindow, QWidget {{ background: {BACKGROUND}; color: {TEXT}; font-size: 10pt; }}
QGroupBox {{
    background: {PANEL}; border: 1px solid {PANEL_BORDER}; border-radius: 6px;
    margin-top: 14px; padding: 6px 6px 4px 6px;
}}
QGroupBox::title {{
    subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {TEXT_DIM};
    font-weight: bold; letter-spacing: 1px;
}}
QTableWidget {{
    background: {PANEL}; border: none; gridline-color: {PANEL_BORDER};
    selection-background-color: #2d3440;
}}
QHeaderView::section {{
    background: {PANEL}; color: {TEXT_DIM}; border: none;
    border-bottom: 1px solid {PANEL_BORDER}; padding: 3px 6px; font-weight: bold;
}}
QListWidget {{ background: {PANEL}; border: none; }}
QPushButton {{
    background: #2b303a; border: 1px solid #3a404c; border-radius: 5px;
    padding: 5px 12px; color: {TEXT};
}}
QPushButton:hover {{ background: #343a46; }}
QPushButton:pressed {{ background: #3d4452; }}
QPushButton:disabled {{ color: #5a606c; border-color: #2c3039; }}
QPushButton#recordButton:checked {{ background: {RECORD}; border-color: {RECORD}; color: white; }}
QPushButton#startButton {{ font-weight: bold; }}
QSlider::groove:horizontal {{ height: 4px; background: #3a404c; border-radius: 2px; }}
QSlider::handle:horizontal {{
    background: {ACCENT}; width: 14px; margin: -6px 0; border-radius: 7px;
}}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{
    background: #2b303a; border: 1px solid #3a404c; border-radius: 4px; padding: 2px 6px;
}}
QStatusBar {{ background: {PANEL}; color: {TEXT_DIM}; }}
QLabel#dim {{ color: {TEXT_DIM}; }}
QLabel#big {{ font-size: 15pt; font-weight: bold; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid {PANEL_BORDER}; }}
"""
