"""The recipe: one config object for a run (data, frontend, model, training), validated by pydantic.

- `recipe`: `Recipe` and its data and model sections; YAML files and `--set` values read safely
  (no aliases, no duplicate keys, bounded nesting);
- `train`: the `train` section (optimiser, augmentation, distillation, outliers).
"""

from audiocnn.config.recipe import (
    DataConfig,
    ModelConfig,
    Recipe,
    apply_override,
    load_recipe,
    parse_settings,
    read_recipe_yaml,
    read_yaml_mapping,
    recipe_from_dict,
)
from audiocnn.config.train import (
    DistillConfig,
    FreqMixStyleConfig,
    OutlierConfig,
    SpecAugmentConfig,
    TrainConfig,
    WaveformAugmentConfig,
)
from audiocnn.errors import ConfigError

__all__ = ["ConfigError", "DataConfig", "DistillConfig", "FreqMixStyleConfig", "ModelConfig", "OutlierConfig", "Recipe",
           "SpecAugmentConfig", "TrainConfig", "WaveformAugmentConfig", "apply_override", "load_recipe",
           "parse_settings", "read_recipe_yaml", "read_yaml_mapping", "recipe_from_dict"]
