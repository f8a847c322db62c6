"""Workshop content: presets, exercises, sharing. Importing the room registers every exercise."""

from cnn_core.workshop import exercises, seed_exercises  # noqa: F401  (seed_exercises adds to exercises.EXERCISES)
