"""The web demo (Gradio): photos, the webcam and video files through `FERPredictor`, on one page.

Every handler turns bad input into a message on the page (never a traceback) and the app keeps serving; all
requests share one queue, so that concurrent users wait their turn instead of competing for the CPU.
"""
import functools
import logging
import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np

from ..inference.attention import attention_grid
from ..inference.io import ImageLoadError
from ..labels import LABELS
from ..models.pretrained import FAMILY
from .model import DEFAULT_MODEL, DemoModel, ModelCache, model_choices
from .video import analyse_video
from .views import (
    FacePanel,
    annotated,
    face_affect,
    face_panels,
    largest_face,
    output_folder,
    prune_outputs,
    result_message,
    result_record,
    write_json,
)

__all__ = ['build_demo', 'launch']

_logger = logging.getLogger(__name__)

TITLE = 'DAN facial expression recognition'
CAVEAT = ('A facial expression is not a felt emotion: the model labels how a face looks in one picture. Do not use '
          'it to make decisions about people. Uploads are deleted from the server after about an hour.')
TOP_K = {'top 3': 3, 'all': None}
QUEUE = 'model'  # every event that runs the model shares this concurrency group


def build_demo(model: str = DEFAULT_MODEL, detector: str = 'auto', device: Optional[str] = None,
               output_dir: Optional[str] = None) -> gr.Blocks:
    """The demo page, with `model` loaded (or the reason it could not be, on the page). Launch it with `launch`
    or `.launch()`; `output_dir` holds the JSON and annotated videos offered for download (default: a
    temporary folder; files older than an hour are deleted)."""
    models = ModelCache(detector, device)
    first = models.get(model)
    outputs = Path(output_dir or tempfile.mkdtemp(prefix='timm-dan-demo-'))
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600), analytics_enabled=False) as demo:
        gr.Markdown(f'# {TITLE}\n{FAMILY["description"].split(". These")[0]}.')
        with gr.Row():
            model_name = gr.Dropdown(model_choices(model), value=model, label='Model', scale=1)
            model_status = gr.Markdown(_model_status(first), elem_id='model-status')
        with gr.Row():
            top_k = gr.Radio(list(TOP_K), value='top 3', label='Probabilities')
            show_attention = gr.Checkbox(False, label="Show each head's attention over the face")
        gr.Markdown(f'<small>{CAVEAT}</small>')

        with gr.Tab('Photos'):
            photos = gr.File(file_count='multiple', label='Photos (one or more)', elem_id='photos')
            photo_status = gr.Markdown(elem_id='photo-status')
            gallery = gr.Gallery(label='Faces found', columns=6, height=600, object_fit='contain',
                                 elem_id='photo-gallery')
            panels = gr.State([])

            @gr.render(inputs=[panels, top_k, show_attention])
            def _face_panels(items: list[FacePanel], k: str, attention: bool):
                for panel in items:
                    with gr.Row(equal_height=True, elem_classes='face-panel'):
                        picture = panel.attention if attention and panel.attention is not None else panel.picture
                        gr.Image(picture, label=panel.title, interactive=False, height=180,
                                 scale=4 if picture is panel.attention else 2, buttons=['download'])
                        gr.Label(panel.probs, num_top_classes=TOP_K[k], label='Probabilities', scale=2,
                                 elem_classes='face-probs')
                        gr.Markdown(panel.summary + ('' if panel.attention is not None or not attention else
                                                     '\n\nThis model has no attention heads to show.'))

            photo_json = gr.DownloadButton('Download JSON', visible=False, elem_id='photo-json')

        with gr.Tab('Webcam'):
            with gr.Row():
                webcam = gr.Image(sources=['webcam'], streaming=True, type='numpy', label='Webcam',
                                  elem_id='webcam')
                webcam_out = gr.Image(label='Faces found', interactive=False, elem_id='webcam-out')
            with gr.Row():
                webcam_probs = gr.Label(label='Largest face', elem_id='webcam-probs')
                webcam_status = gr.Markdown(elem_id='webcam-status')

        with gr.Tab('Video'):
            with gr.Row():
                # a file box, not a player: browsers play few of the formats OpenCV reads (avi, mov, mkv)
                video = gr.File(label='Video file (mp4, webm, avi, mov, mkv...)', elem_id='video')
                every = gr.Slider(1, 30, value=5, step=1, label='Analyse every N-th frame')
            analyse = gr.Button('Analyse the video', variant='primary')
            video_status = gr.Markdown(elem_id='video-status')
            with gr.Row():
                video_out = gr.Video(label='Annotated', interactive=False, elem_id='video-out')
                timeline = gr.LinePlot(x='seconds', y='probability', color='label', label='Largest face over time',
                                       y_lim=[0, 1])
            video_json = gr.DownloadButton('Download JSON', visible=False, elem_id='video-json')

        analyse_photos = _guarded(functools.partial(_analyse_photos, models, outputs))
        photo_outputs = [photo_status, gallery, panels, photo_json]
        photos.change(analyse_photos, [photos, model_name], photo_outputs, api_name='photos', concurrency_id=QUEUE)
        model_name.change(_guarded(lambda name: _model_status(models.get(name))), model_name, model_status,
                          api_name='model', concurrency_id=QUEUE).then(  # the photos again, with the new model
            analyse_photos, [photos, model_name], photo_outputs, api_name=False, concurrency_id=QUEUE)
        webcam.stream(_guarded(functools.partial(_webcam_frame, models)), [webcam, model_name, top_k, show_attention],
                      [webcam_out, webcam_probs, webcam_status], stream_every=0.3, time_limit=300,
                      show_progress='hidden', api_name='webcam', concurrency_id=QUEUE)
        analyse.click(_guarded(functools.partial(_analyse_video, models, outputs)), [video, model_name, every],
                      [video_status, video_out, timeline, video_json], api_name='video', concurrency_id=QUEUE)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch(demo: gr.Blocks, port: Optional[int] = None, host: Optional[str] = None, share: bool = False,
           **kwargs: Any) -> Any:
    """`demo.launch(...)` with the demo's upload limit (videos included)."""
    return demo.launch(server_name=host, server_port=port, share=share, max_file_size='500mb', **kwargs)


def _guarded(fn):
    """Unexpected errors become a one-line message on the page (the traceback goes to the server's log)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            _logger.exception('The demo failed on a request')
            raise gr.Error(f'Something went wrong ({type(e).__name__}); the server log has the details.') from e
    return wrapper


def _model_status(model: DemoModel) -> str:
    if model.problem:
        return f'⚠️ {model.problem}'
    labels = model.predictor.label_names
    canonical = ' (canonical order)' if tuple(labels) == LABELS[:len(labels)] else ''
    _, height, width = model.predictor.data_config['input_size']
    heads = 'with attention maps' if model.attention else 'no attention maps'
    return (f'**{model.name}**: {len(labels)} classes{canonical}: {", ".join(labels)}; input {width}x{height}, '
            f'{heads}.')


def _no_model(model: DemoModel) -> str:
    return f'⚠️ No model to run: `{model.name}` could not be loaded (the message at the top says why and what to do).'


def _analyse_photos(models: ModelCache, outputs: Path, files: Optional[list[str]], name: str,
                    progress=gr.Progress()):
    hidden = gr.DownloadButton(visible=False)
    if not files:
        return '', [], [], hidden
    model = models.get(name)
    if model.problem:
        return _no_model(model), [], [], hidden
    prune_outputs(outputs)
    messages, pictures, panels, records = [], [], [], []
    for path in progress.tqdm(files, desc='Photos'):
        shown = Path(path).name
        result = model.predictor.predict(path, attention=model.attention, keep_images=True)[0]
        messages.append(result_message(result, shown))
        records.append(result_record(result, shown))
        if result.error:
            continue
        caption = shown if result.faces else f'{shown}: no face'
        pictures.append((annotated(result), caption))
        panels += face_panels(result, shown)
    stem = Path(files[0]).stem if len(files) == 1 else 'photos'
    json_file = write_json(records, output_folder(outputs) / f'{stem}_expressions.json')
    gallery = gr.Gallery(pictures, selected_index=0 if pictures else None)  # opened on the first photo, whole
    return '\n\n'.join(messages), gallery, panels, gr.DownloadButton(value=str(json_file), visible=True)


def _webcam_frame(models: ModelCache, frame: Optional[np.ndarray], name: str, k: str, attention: bool):
    if frame is None:
        return None, None, ''
    model = models.get(name)
    if model.problem:
        return frame, None, _no_model(model)
    use_attention = attention and model.attention
    result = model.predictor.predict(frame, attention=use_attention, keep_images=True)[0]
    face = largest_face(result)
    if face is None:
        return result.image, None, 'No face in view: face the camera, closer and in good light.'
    picture = annotated(result, 960)
    if use_attention:  # the largest face's heads, under the frame
        grid = attention_grid(face)
        grid = np.pad(grid, ((0, 0), (0, max(0, picture.shape[1] - grid.shape[1])), (0, 0)))[:, :picture.shape[1]]
        picture = np.concatenate([picture, grid])
    affect = ', '.join(f'{k} {v:+.2f}' for k, v in face_affect(face).items())
    count = len(result.faces)
    text = f'{count} face{"s" if count > 1 else ""}; largest: **{face.label}** {face.score:.2f}' + (
        f' ({affect})' if affect else '')
    return picture, gr.Label(dict(face.probs), num_top_classes=TOP_K[k]), text


def _analyse_video(models: ModelCache, outputs: Path, path: Optional[str], name: str, every: int,
                   progress=gr.Progress()):
    hidden = gr.DownloadButton(visible=False)
    if not path:
        return 'Upload a video file first.', None, None, hidden
    model = models.get(name)
    if model.problem:
        return _no_model(model), None, None, hidden
    import pandas as pd
    prune_outputs(outputs)
    shown = Path(path).name
    folder = output_folder(outputs)
    progress(0, desc='Frames')
    try:
        analysis = analyse_video(model.predictor, path, shown, folder / f'{Path(shown).stem}_annotated.webm',
                                 every=int(every), progress=lambda done, total: progress((done, total), desc='Frames'))
    except ImageLoadError as e:
        return f'**{shown}**: {str(e).removeprefix(f"{shown}: ")}', None, None, hidden
    json_file = write_json(analysis.records, folder / f'{Path(shown).stem}_expressions.json')
    table = pd.DataFrame(analysis.timeline, columns=['seconds', 'label', 'probability'])
    return (f'**{shown}**: {analysis.message}', str(analysis.video), table,
            gr.DownloadButton(value=str(json_file), visible=True))

