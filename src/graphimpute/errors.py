"""User-facing errors: one readable line, turned into a non-zero exit by the CLI."""


class GraphImputeError(ValueError):
    """A problem the user can fix (bad input, impossible option, not enough memory). A ``ValueError``, as
    scanpy's and anndata's errors for bad arguments are, so that code catching those catches this."""


class InputError(GraphImputeError):
    """The input file is missing, unreadable or not a count matrix."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DeviceError(GraphImputeError):
    """The requested device does not exist here."""


class ResourceError(GraphImputeError):
    """A run would not fit in memory, or a graph would be too large to build."""


class NotEnoughMemoryError(ResourceError):
    """A run's memory estimate exceeds the memory it may use (the machine's free memory, or the memory a
    scheduler gave the task): more memory would let it run, so a pipeline may retry it with more."""


class CheckpointError(GraphImputeError):
    """A checkpoint cannot be resumed: it was made for other data, parameters, seed or version."""


class OutputError(GraphImputeError):
    """An output cannot be written: the folder is not writable, the disk is full, or an output name is
    unusable. ``exit_at_once``: the failure left a library (HDF5) unable to shut down cleanly."""

    exit_at_once = False

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
