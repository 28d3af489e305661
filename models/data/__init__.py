"""The data sets the published models were trained on, read from their own file formats.

- ``deap``: DEAP ``data_preprocessed_python/sXX.dat`` (pickles, read with ``safe_pickle``)
- ``dreamer``: DREAMER ``DREAMER.mat``
- ``see``: SEE frame and event-frame folders with ``emotion.json``
- ``windows``: baseline removal, windowing and LOSO / k-fold splits shared by DEAP and DREAMER

``app.simulate`` writes all three formats from the virtual participant.
No torch here: loaders return numpy arrays.
"""

from models.data.deap import load_deap
from models.data.dreamer import load_dreamer
from models.data.safe_pickle import UnsafePickleError, safe_load
from models.data.see import SeeDataset
from models.data.windows import DataSetError, WindowedSignals, kfold_splits, loso_splits

__all__ = [
    "DataSetError",
    "SeeDataset",
    "UnsafePickleError",
    "WindowedSignals",
    "kfold_splits",
    "load_deap",
    "load_dreamer",
    "loso_splits",
    "safe_load",
]
