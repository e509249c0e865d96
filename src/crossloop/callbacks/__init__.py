"""Callbacks: code that runs on the loop's named events, one module per callback.

    base            Callback, the no-op hooks to override
    logger          EpochLogger: one plain line per epoch
    progress        ProgressBar (tqdm) and progress_callback (bar or lines)
    early_stopping  EarlyStopping
    non_finite      NonFiniteGuard, NonFiniteError
    checkpoint      CheckpointCallback: last and best checkpoints
    history         HistoryFile: history.json after every epoch
    tensorboard     TensorBoard event files, written without TensorFlow
    plot            PlotCurves: curves.png at the end
    monitor         Best: has a monitored value improved (shared rule)

Optional libraries (tqdm, tensorboard, matplotlib, safetensors) are imported
only when a callback that needs them runs.
"""

from .base import Callback
from .checkpoint import CheckpointCallback
from .early_stopping import EarlyStopping
from .history import HistoryFile
from .logger import EpochLogger, format_epoch
from .monitor import Best
from .non_finite import NonFiniteError, NonFiniteGuard
from .plot import PlotCurves
from .progress import ProgressBar, progress_callback
from .tensorboard import TensorBoard

__all__ = ["Best", "Callback", "CheckpointCallback", "EarlyStopping", "EpochLogger",
           "HistoryFile", "NonFiniteError", "NonFiniteGuard", "PlotCurves", "ProgressBar",
           "TensorBoard", "format_epoch", "progress_callback"]
