"""Prediction on recordings: windows → runtime → probabilities → files and formats.

- `windows`: where windows start in a streamed signal, and how the last ones are padded;
- `predictor`: `Predictor`, a bundle applied window by window to whole recordings;
- `runtimes`: batch-norm folding, ONNX Runtime, channels-last (outputs unchanged);
- `quantize`: a bundle's 8-bit graph (`predict --runtime int8`);
- `inputs`: the recordings of a run, where each one's results go, and shards (`--shard K/N`);
- `workers`: files classified here or in N processes, with the same results;
- `files`: many files, bad ones reported, the rest classified, one result per file (`--out-dir`);
- `detections`: window labels as detections, consecutive ones merged;
- `formats`: table, CSV, JSON, Raven, Audacity, Kaleidoscope and score tables;
- `tables`: result tables read back and merged (`audiocnn merge`);
- `snippets`: the audio of detections, for review;
- `overview`: a file's spectrogram collected while it streams (for `--timeline`);
- `denoise`: spectral gating before prediction;
- `export`: a bundle as one ONNX graph, waveform in, probabilities out (`onnx_frontend`: its STFT).

Nothing here imports training code, lightning, scikit-learn or matplotlib: the prediction
path stays light to import and safe to serve.
"""
