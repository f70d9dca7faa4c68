"""Sound into pictures: the frontends (torch modules, batched on any device) and their blocks.

- `frontends`: the registry (`FRONTENDS`, `create_frontend`) and the six kinds: log-spectrogram,
  log-mel, PCEN, MFCC, gammatone and multi-resolution mel;
- `spectral`: their parameters and the shared STFT, mel filterbank and PCEN blocks;
- `birdnet`: not a picture but what an audio-pretrained network hears: BirdNET V2.4's embedding
  (`birdnet_graph` runs its TFLite graph), for a head to classify;
- `windows`: recordings cut into the windows a model hears.
"""

from audiocnn.features import birdnet  # noqa: F401 - importing it registers the birdnet-v2.4 frontend
from audiocnn.features.frontends import FRONTENDS, Frontend, Pcen, create_frontend, is_embedding, register
from audiocnn.features.spectral import AMIN_POWER, MelParams, StftParams, next_power_of_two, power_to_db

__all__ = ["AMIN_POWER", "FRONTENDS", "Frontend", "MelParams", "Pcen", "StftParams", "create_frontend", "is_embedding",
           "next_power_of_two", "power_to_db", "register"]
