"""Every picture the project draws; the only package that imports matplotlib.

- `axes`: spectrogram axes in s and Hz, figure creation and atomic saving;
- `features`: feature images of audio files; `timeline`: labels over time;
- `explanations`: attribution overlays; `class_profiles`: per-class attribution figures;
- `confusion`: the confusion matrix; `study`: study charts.

Figures use matplotlib's object API (`matplotlib.figure.Figure`), never pyplot: no backend
is selected and no global state kept, so importing or drawing changes nothing else in the
process and is safe from several threads.
"""
