"""`audiocnn serve`: the library behind a versioned REST API and a web page.

One process loads the model once and answers `POST /v1/predict` (the same documents as
`audiocnn predict`), `POST /v1/explain` (the picture `audiocnn explain` draws), `GET /v1/model`,
`GET /healthz` and `GET /metrics`, and serves the page at `/`, which works offline. Uploads go to
temporary files that are always deleted, even after a kill; a bounded pool of workers classifies
them once they have arrived, a full pool answers 503 at once instead of queueing without end, and
a job past its time is stopped. Modules: `app` (guards and errors installed), `state` (what the routes share, admission,
lifespan), `routes`, `guards`
(Host, body size, pace and room), `multipart`, `uploads`, `pool`, `service`, `server` (uvicorn,
header deadline, connection bound), `settings`, `metrics`.
"""

from audiocnn.serve.app import create_app
from audiocnn.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
