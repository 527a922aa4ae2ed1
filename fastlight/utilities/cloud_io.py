"""Lightning's `utilities.cloud_io` loading name: `_load`, fastlight's checkpoint reader (checkpoint_io.load_checkpoint:
local paths, file objects and http(s) URLs; a safe load unless weights_only=False)."""
from typing import IO, Any, Optional, Union

from fastlight.utilities.checkpoint_io import _PATH, load_checkpoint


def _load(path_or_url: Union[IO[bytes], _PATH], map_location: Any = None, weights_only: Optional[bool] = None) -> Any:
    """The checkpoint at `path_or_url`, as Lightning's `_load` reads it (see checkpoint_io.load_checkpoint)."""
    return load_checkpoint(path_or_url, map_location=map_location, weights_only=weights_only)
