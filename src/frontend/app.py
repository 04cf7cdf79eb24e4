"""The Dash page: layout, callbacks (plain functions) and `create_app()`."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any

import dash
import flask
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from frontend.api import BackendClient, BackendError
from frontend.settings import Settings
from frontend.uploads import ACCEPTED_FORMATS, UploadError, decode_upload

log = logging.getLogger(__name__)

TITLE = "Grocery classifier"
PLACEHOLDER = "-"
UNKNOWN_LABEL = "unknown (uploaded image)"
NO_IMAGE = "No image yet."

OUTPUTS = (
    ("image-area", "children"),
    ("predicted-label", "children"),
    ("true-label", "children"),
    ("confidence", "children"),
    ("match-status", "children"),
    ("probability-chart", "figure"),
    ("error-message", "children"),
)


def empty_figure() -> go.Figure:
    """A blank chart shown before any prediction."""
    fig = go.Figure()
    fig.update_layout(
        height=320,
        margin={"l": 90, "r": 20, "t": 40, "b": 40},
        title="Class probabilities",
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def probability_figure(probabilities: dict[str, float], highlight: str | None = None) -> go.Figure:
    """Horizontal bar chart of the class probabilities, largest at the top."""
    items = sorted(probabilities.items(), key=lambda kv: kv[1])
    labels = [str(k) for k, _ in items]
    values = [float(v) for _, v in items]
    colors = ["#2a7ab0" if k == highlight else "#a9c4d9" for k in labels]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker={"color": colors},
            text=[f"{v:.1%}" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=320,
        margin={"l": 90, "r": 20, "t": 40, "b": 40},
        title="Class probabilities",
        xaxis={"range": [0, 1], "tickformat": ".0%"},
    )
    return fig


@dataclass(frozen=True)
class View:
    """Everything the result area shows; `outputs()` is in the order of `OUTPUTS`."""

    image: Any = NO_IMAGE
    predicted: str = PLACEHOLDER
    true: str = PLACEHOLDER
    confidence: str = PLACEHOLDER
    match: str = ""
    figure: go.Figure = field(default_factory=empty_figure)
    error: str = ""

    def outputs(self) -> tuple[Any, ...]:
        return (
            self.image,
            self.predicted,
            self.true,
            self.confidence,
            self.match,
            self.figure,
            self.error,
        )


def error_view(message: str) -> View:
    """A cleared result area with `message` in the error area."""
    return View(error=message)


def _image(src: str, caption: str) -> html.Figure:
    return html.Figure(
        [
            html.Img(id="shown-image", src=src, alt=caption, style={"maxWidth": "256px"}),
            html.Figcaption(caption, id="image-caption"),
        ],
        style={"margin": 0},
    )


def prediction_view(
    prediction: dict[str, Any], image_src: str, caption: str, true: str | None
) -> View:
    """The result area for a prediction of the image at `image_src`."""
    label = str(prediction["label"])
    try:
        confidence = f"{float(prediction['confidence']):.1%}"
    except (TypeError, ValueError):
        confidence = PLACEHOLDER
    if true is None:
        match = ""
    else:
        match = "The prediction is correct." if label == true else "The prediction is wrong."
    return View(
        image=_image(image_src, caption),
        predicted=label,
        true=true if true is not None else UNKNOWN_LABEL,
        confidence=confidence,
        match=match,
        figure=probability_figure(prediction["probabilities"], highlight=label),
    )


def show_random_prediction(client: BackendClient) -> View:
    """Fetch a random sample, have the backend predict it and build the view."""
    try:
        sample = client.random_sample()
        try:
            image_bytes = base64.b64decode(sample["image_base64"], validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise BackendError(
                "The backend sent a sample image that could not be decoded."
            ) from exc
        filename = str(sample["name"]).rsplit("/", 1)[-1]
        prediction = client.predict(image_bytes, filename, str(sample["media_type"]))
    except BackendError as exc:
        return error_view(exc.message)
    src = f"data:{sample['media_type']};base64,{sample['image_base64']}"
    return prediction_view(prediction, src, str(sample["name"]), str(sample["true_label"]))


def show_upload_prediction(
    client: BackendClient, contents: str, filename: str | None, max_bytes: int
) -> View:
    """Check an uploaded file, have the backend predict it and build the view."""
    try:
        data, media_type = decode_upload(contents, filename, max_bytes)
        prediction = client.predict(data, filename or "upload", media_type)
    except (UploadError, BackendError) as exc:
        return error_view(exc.message)
    src = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
    return prediction_view(prediction, src, filename or "uploaded image", None)


def update_result(
    trigger: str | None,
    contents: str | None,
    filename: str | None,
    client: BackendClient,
    max_bytes: int,
) -> tuple[Any, ...]:
    """The callback body: dispatch on what triggered it; never raises."""
    if not isinstance(filename, str):  # a crafted request, not the browser's upload box
        filename = None
    try:
        if trigger == "predict-random":
            view = show_random_prediction(client)
        elif trigger == "upload-image" and contents:
            view = show_upload_prediction(client, contents, filename, max_bytes)
        else:
            return tuple(dash.no_update for _ in OUTPUTS)
    except Exception:  # the page must show a sentence, never a broken callback
        log.exception("unexpected error while predicting")
        view = error_view("Something went wrong in the frontend; please try again.")
    return view.outputs()


def backend_status(client: BackendClient) -> str:
    """One line on the backend's health for the top of the page."""
    try:
        health = client.health()
    except BackendError as exc:
        return exc.message
    if health.get("model_loaded") is False:
        return "The backend is running but has no model loaded."
    if health.get("status") != "ok":
        return f"The backend is not ready (status {health.get('status')!r})."
    version = str(health.get("model_version") or "")[:12]
    return "The backend is ready" + (f" (model {version})." if version else ".")


def layout(settings: Settings) -> html.Div:
    """The page."""
    limit_mb = settings.max_upload_bytes / (1024 * 1024)
    return html.Div(
        [
            dcc.Location(id="page-location"),
            html.H1(TITLE),
            html.P(id="backend-status", children="Checking the backend..."),
            html.Div(
                [
                    html.Button("Predict random image", id="predict-random", n_clicks=0),
                    dcc.Upload(
                        id="upload-image",
                        children=html.Div(
                            [
                                "Drop an image here or ",
                                html.A("choose a file", href="#"),
                                f" to predict your own ({ACCEPTED_FORMATS}, "
                                f"up to {limit_mb:.1f} MB)",
                            ]
                        ),
                        multiple=False,
                        # Files up to 3x the limit reach the server and get a message there;
                        # the browser itself refuses anything larger (body size bounded), and
                        # assets/upload_limit.js says so in #upload-refused.
                        max_size=3 * settings.max_upload_bytes,
                        style={
                            "border": "1px dashed #888",
                            "borderRadius": "6px",
                            "padding": "12px",
                            "marginTop": "12px",
                            "textAlign": "center",
                        },
                    ),
                ]
            ),
            html.Div(
                id="error-message",
                role="alert",
                style={"color": "#b00020", "fontWeight": "bold", "minHeight": "1.5em"},
            ),
            html.Div(
                id="upload-refused",
                role="alert",
                style={"color": "#b00020", "fontWeight": "bold"},
                **{
                    "data-max-size": str(3 * settings.max_upload_bytes),
                    "data-limit": str(settings.max_upload_bytes),
                },
            ),
            dcc.Loading(
                delay_show=300,
                children=html.Div(
                    [
                        html.Div(id="image-area", children=NO_IMAGE),
                        html.P(
                            ["Predicted label: ", html.Strong(PLACEHOLDER, id="predicted-label")]
                        ),
                        html.P(["True label: ", html.Strong(PLACEHOLDER, id="true-label")]),
                        html.P(["Confidence: ", html.Span(PLACEHOLDER, id="confidence")]),
                        html.P(id="match-status"),
                        dcc.Graph(
                            id="probability-chart",
                            figure=empty_figure(),
                            config={"displayModeBar": False},
                        ),
                    ]
                ),
            ),
        ],
        style={"maxWidth": "720px", "margin": "0 auto", "fontFamily": "sans-serif"},
    )


DISPATCH_PATH = "_dash-update-component"


def _is_prop(item: object) -> bool:
    """One input, state or output entry: {"id": ..., "property": str, ...}."""
    return isinstance(item, dict) and "id" in item and isinstance(item.get("property"), str)


def callback_body_problem(body: object, callbacks: dict) -> str | None:
    """Why body is not a callback request of this app (None when it is one): a JSON object
    naming a known output, with lists of inputs and state (entries or lists of entries, as
    pattern-matching callbacks send), outputs and changedPropIds as the renderer sends them."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if not isinstance(body.get("output"), str) or body["output"] not in callbacks:
        return "no callback has that output"
    callback = callbacks[body["output"]]
    for key in ("inputs", "state"):
        entries = body.get(key, [])
        if not isinstance(entries, list) or not all(
            _is_prop(e) or (isinstance(e, list) and all(map(_is_prop, e))) for e in entries
        ):
            return f"{key!r} is not a list of {{id, property, value}} entries"
        if len(entries) != len(callback[key]):
            return f"{key!r} has {len(entries)} entries, the callback takes {len(callback[key])}"
    outputs, wanted = body.get("outputs"), callback["outputs_indices"]
    if isinstance(wanted, int) and not _is_prop(outputs):
        return "'outputs' is not an {id, property} entry"
    if isinstance(wanted, list) and not (
        isinstance(outputs, list) and len(outputs) == len(wanted) and all(map(_is_prop, outputs))
    ):
        return f"'outputs' is not a list of {len(wanted)} {{id, property}} entries"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "'changedPropIds' is not a list of strings"
    return None


def create_app(settings: Settings | None = None, client: BackendClient | None = None) -> dash.Dash:
    """Build the Dash app; assets are served locally (no CDN)."""
    settings = settings or Settings()
    client = client or BackendClient.from_settings(settings)
    app = dash.Dash(__name__, title=TITLE, serve_locally=True, update_title=None)
    # No dev tools, and no version check against plotly's servers (the machine is offline).
    app.enable_dev_tools(debug=False, dev_tools_disable_version_check=True)
    # Uploads travel base64-encoded inside the callback JSON: leave room so that files over
    # MAX_UPLOAD_BYTES still arrive and get a clear message, but refuse absurd bodies.
    app.server.config["MAX_CONTENT_LENGTH"] = 4 * settings.max_upload_bytes + 1024 * 1024
    app.layout = layout(settings)

    @app.server.errorhandler(RecursionError)
    def _too_deep(_error: RecursionError) -> tuple[dict, int]:
        """A callback body nested deeper than the JSON parser can follow is bad input."""
        return {"error": "the request body is nested too deeply"}, 400

    @app.server.before_request
    def _check_callback_body() -> tuple[dict, int] | None:
        """A callback request that Dash's renderer would never send is answered 400 here,
        before Dash reads it (it would fail with a 500 and an HTML traceback)."""
        if flask.request.method == "POST" and flask.request.path.endswith(DISPATCH_PATH):
            problem = callback_body_problem(flask.request.get_json(silent=True), app.callback_map)
            if problem:
                return {"error": f"not a Dash callback request: {problem}"}, 400
        return None

    @app.callback(
        [Output(i, p) for i, p in OUTPUTS],
        Input("predict-random", "n_clicks"),
        Input("upload-image", "contents"),
        State("upload-image", "filename"),
        prevent_initial_call=True,
        running=[(Output("predict-random", "disabled"), True, False)],
    )
    def _on_predict(_n_clicks: int, contents: str | None, filename: str | None) -> tuple:
        return update_result(
            dash.ctx.triggered_id, contents, filename, client, settings.max_upload_bytes
        )

    @app.callback(Output("backend-status", "children"), Input("page-location", "pathname"))
    def _on_load(_pathname: str | None) -> str:
        return backend_status(client)

    return app
