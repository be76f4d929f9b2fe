"""Fixtures for the web demo's tests: a small model the test saves, the app served on a free local port, headless
Chromium driven by Playwright, a fake camera fed from real face images, and the screenshots people look at."""
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import timm_dan  # noqa: F401  (registers the dan_* models)
from tests.inference.conftest import png_header_only  # noqa: F401  (a fixture, used by `photos`)

gr = pytest.importorskip('gradio')
skimage_data = pytest.importorskip('skimage.data')

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']
SCREENSHOTS_ENV = 'TIMM_DAN_SCREENSHOT_DIR'
"""When set, each screenshot is also copied there (for people to look at; the tests write them to a tmp dir)."""


@pytest.fixture(scope='session', autouse=True)
def _no_gradio_analytics():
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'


@pytest.fixture(scope='session')
def small_model_dir(tmp_path_factory) -> Path:
    """A random-weight 7-class dan_resnet18 with a 64x64 data config, written as the project writes Hub folders."""
    from timm_dan.hub import ModelCardInfo, save_model_folder
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=7, pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    with torch.no_grad():  # spread the logits so that the probabilities differ from class to class
        model.bn.running_mean.uniform_(-1, 1)
    return save_model_folder(model.eval(), tmp_path_factory.mktemp('model') / 'small',
                             card=ModelCardInfo('dan_resnet18.small', ['rafdb']))


@pytest.fixture(scope='session')
def photos(tmp_path_factory, png_header_only) -> dict[str, Path]:  # noqa: F811
    """Files as a user uploads them: a face (astronaut), none (coffee), a text file, and a PNG whose header
    claims 100 megapixels over a few bytes (a decompression bomb)."""
    folder = tmp_path_factory.mktemp('photos')
    Image.fromarray(skimage_data.astronaut()).save(folder / 'astronaut.png')
    Image.fromarray(skimage_data.coffee()).save(folder / 'coffee.jpg')
    (folder / 'notes.txt').write_text('shopping list: milk, eggs\n')
    png_header_only(folder / 'huge.png', 10_000, 10_000)
    return {p.stem: p for p in folder.iterdir()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def serve(demo) -> str:
    """Launch a built demo on a free local port (in this process, non-blocking); returns its URL."""
    from timm_dan.demo import launch
    port = free_port()
    launch(demo, port=port, host='127.0.0.1', prevent_thread_lock=True, quiet=True, ssr_mode=False)
    return f'http://127.0.0.1:{port}/'


@pytest.fixture(scope='session')
def served_demo(small_model_dir, tmp_path_factory):
    """(the demo on the small model with the Haar detector, its URL)."""
    from timm_dan.demo import build_demo
    demo = build_demo(f'local-dir:{small_model_dir}', detector='haar',
                      output_dir=str(tmp_path_factory.mktemp('demo-out')))
    yield demo, serve(demo)
    demo.close()


@pytest.fixture(scope='session')
def fake_camera(tmp_path_factory) -> Path:
    """A .y4m clip for Chromium's fake camera: 640x480 crops of the astronaut photo, drifting 4 pixels a frame."""
    import cv2
    photo = skimage_data.astronaut()
    path = tmp_path_factory.mktemp('camera') / 'face.y4m'
    with open(path, 'wb') as f:
        f.write(b'YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n')
        for shift in range(0, 32, 4):
            frame = np.full((480, 640, 3), 128, np.uint8)
            frame[:, 64:576] = photo[shift:shift + 480]
            f.write(b'FRAME\n' + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope='session')
def browser(fake_camera, tmp_path_factory):
    """Headless Chromium (Debian's, not a Playwright download) with the fake camera; skipped when either is
    missing (`.ci/run` installs both)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f'no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)')
    sync_api = pytest.importorskip('playwright.sync_api', reason='Playwright for Python is not installed')
    camera = ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
              f'--use-file-for-fake-video-capture={fake_camera}']
    profile = tmp_path_factory.mktemp('chromium-profile')
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_FLAGS + camera, headless=True,
            viewport={'width': 1280, 'height': 1000}, permissions=['camera'])
        yield context
        context.close()


@pytest.fixture(scope='session')
def screenshot(tmp_path_factory):
    """`screenshot(page, name)`: a full-page PNG in the tests' tmp dir (and in $TIMM_DAN_SCREENSHOT_DIR)."""
    folder = tmp_path_factory.mktemp('screenshots')
    extra = os.environ.get(SCREENSHOTS_ENV)

    def take(page, name: str) -> Path:
        path = folder / f'{name}.png'
        page.screenshot(path=str(path), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        print(f'screenshot: {path}')
        return path
    return take
