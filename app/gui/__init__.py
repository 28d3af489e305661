"""The Qt dashboard (PySide6 + pyqtgraph). Qt is imported only inside this package."""

from app.gui.dashboard import Dashboard
from app.gui.launch import run_dashboard, save_screenshot

__all__ = ["Dashboard", "run_dashboard", "save_screenshot"]
