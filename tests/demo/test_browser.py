"""The web demo in a real browser: headless Chromium driven by Playwright against the app served on localhost.

Each state is saved as a screenshot (the tests' tmp dir, and $TIMM_DAN_SCREENSHOT_DIR when set)."""
import pytest

from tests.demo.conftest import serve
from timm_dan.inference import FERPredictor

TIMEOUT_MS = 120_000  # a busy 2-core machine: model calls and page renders can take seconds


@pytest.fixture
def page(browser, served_demo):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served_demo[1])
    page.wait_for_selector('#photos')
    yield page
    page.close()


def _upload(page, *paths):
    page.locator('#photos input[type=file]').set_input_files([str(p) for p in paths])


def _status(page, selector: str, text: str) -> str:
    from playwright.sync_api import expect
    expect(page.locator(selector)).to_contain_text(text, timeout=TIMEOUT_MS)
    return page.locator(selector).inner_text()


def test_photo_with_one_face(page, photos, small_model_dir, screenshot):
    from playwright.sync_api import expect
    _upload(page, photos['astronaut'])
    assert _status(page, '#photo-status', 'astronaut.png') == 'astronaut.png: 1 face.'
    panels = page.locator('.face-panel')
    expect(panels).to_have_count(1)
    (face,) = FERPredictor(f'local-dir:{small_model_dir}', detector='haar').predict(photos['astronaut'])[0].faces
    probs = panels.locator('.face-probs')
    expect(probs.get_by_test_id('label-output-value')).to_have_text(face.label)
    bars = probs.locator('meter')
    expect(bars).to_have_count(3)  # the top 3
    assert [bars.nth(i).get_attribute('aria-label') for i in range(3)] == [name for name, _ in face.top(3)]
    assert float(bars.first.get_attribute('value')) == pytest.approx(face.score, abs=1e-6)
    expect(page.locator('#photo-gallery img').first).to_be_visible()
    expect(page.locator('#photo-json')).to_be_visible()
    assert face.label in panels.first.inner_text()  # the summary line: label, score, box
    screenshot(page, 'photo_astronaut_one_face')

    page.get_by_role('radio', name='all').check()
    expect(page.locator('.face-probs meter')).to_have_count(7)
    page.get_by_label("Show each head's attention over the face").check()
    picture = page.locator('.face-panel img').first
    expect(picture).to_be_visible()
    page.wait_for_function(  # the attention grid (face + 4 heads) replaces the face picture
        "() => { const i = document.querySelector('.face-panel img'); "
        "return i && i.naturalWidth >= 4 * i.naturalHeight; }", timeout=TIMEOUT_MS)
    screenshot(page, 'photo_astronaut_attention_all_probabilities')


def test_photo_without_face_and_bad_files_then_the_app_keeps_serving(page, photos, screenshot):
    from playwright.sync_api import expect
    _upload(page, photos['coffee'], photos['notes'], photos['huge'])
    status = _status(page, '#photo-status', 'huge.png')
    assert 'coffee.jpg: no face found' in status
    assert 'notes.txt: not an image file' in status and 'huge.png: 10000x10000 = 100,000,000 pixels' in status
    assert 'Traceback' not in page.content()
    expect(page.locator('.face-panel')).to_have_count(0)
    screenshot(page, 'photo_coffee_no_face_and_bad_files')
    page.locator('#photos').get_by_role('button', name='Clear').click()
    _upload(page, photos['astronaut'])
    assert _status(page, '#photo-status', 'astronaut') == 'astronaut.png: 1 face.'


def test_webcam_through_the_fake_camera(page, screenshot):
    from playwright.sync_api import expect
    page.get_by_role('tab', name='Webcam').click()
    page.get_by_text('Click to Access Webcam').click()
    page.get_by_role('button', name='capture photo').click()  # starts streaming
    assert '1 face; largest: ' in _status(page, '#webcam-status', 'largest')
    expect(page.locator('#webcam-probs meter')).to_have_count(3)
    expect(page.locator('#webcam-out img')).to_be_visible()
    screenshot(page, 'webcam_fake_camera')


def test_offline_without_weights_the_page_says_what_to_do(browser, photos, tmp_path, monkeypatch, screenshot):
    from huggingface_hub import constants

    from timm_dan.demo import build_demo
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    demo = build_demo('dan_resnet18', detector='haar', output_dir=str(tmp_path / 'out'))
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(serve(demo))
        banner = _status(page, '#model-status', 'could not be loaded')
        assert 'timm-dan/dan_resnet18.affectnet8' in banner and 'unset HF_HUB_OFFLINE' in banner
        assert 'timm-dan hub convert-official affecnet8_epoch5_acc0.6209.pth --dataset affectnet8' in banner
        _upload(page, photos['astronaut'])
        assert 'could not be loaded' in _status(page, '#photo-status', 'dan_resnet18')
        assert 'Traceback' not in page.content()
        screenshot(page, 'offline_missing_weights')
        page.close()
    finally:
        demo.close()
