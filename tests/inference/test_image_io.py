"""Image loading: colour modes, EXIF rotation, odd sizes, the decompression-bomb guard, and non-image files."""
import numpy as np
import pytest
from PIL import Image

from timm_dan.inference.io import ImageLoadError, expand_inputs, load_image, sniff_format


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    out = load_image(_save(tmp_path, 'g.png', Image.fromarray(gray, 'L')))
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    out = load_image(_save(tmp_path, 'a.png', Image.fromarray(rgba, 'RGBA')))
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [255, 255, 255])


def test_palette_and_cmyk(tmp_path):
    rgb = np.zeros((6, 6, 3), dtype=np.uint8)
    rgb[:, 3:] = [0, 0, 255]
    palette = Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=4)
    out = load_image(_save(tmp_path, 'p.png', palette))
    np.testing.assert_array_equal(out[0, 5], [0, 0, 255])
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])

    cmyk = Image.new('CMYK', (5, 5), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_save(tmp_path, 'c.jpg', cmyk, quality=100))
    assert out.shape == (5, 5, 3)
    assert out[2, 2, 0] > 200 and out[2, 2, 1] < 60 and out[2, 2, 2] < 60


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    out = load_image(_save(tmp_path, 'g16.png', Image.fromarray(values)))
    assert out[0, 1, 0] == 255 and out[0, 0, 0] == 0 and 120 < out[1, 0, 0] < 136


def test_exif_rotation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), dtype=np.uint8)
    image[:, :20] = [255, 0, 0]  # left half red, right half blue
    image[:, 20:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned, rotate 90 degrees clockwise to view
    out = load_image(_save(tmp_path, 'r.jpg', Image.fromarray(image), exif=exif, quality=95))
    assert out.shape == (40, 20, 3)
    assert out[2, 10, 0] > 200 and out[2, 10, 2] < 60  # red is now on top
    assert out[37, 10, 2] > 200 and out[37, 10, 0] < 60


def test_one_pixel_image(tmp_path):
    out = load_image(_save(tmp_path, 'one.png', Image.new('RGB', (1, 1), (10, 20, 30))))
    np.testing.assert_array_equal(out, [[[10, 20, 30]]])


def test_decompression_bomb_is_refused_before_decoding(tmp_path, png_header_only):
    bomb = png_header_only(tmp_path / 'bomb.png', 50_000, 50_000)  # 2.5 gigapixels, a few bytes on disk
    with pytest.raises(ImageLoadError, match=r'bomb\.png: 50000x50000 = 2,500,000,000 pixels .*decompression-bomb'):
        load_image(bomb)
    big = _save(tmp_path, 'big.png', Image.new('RGB', (300, 200)))
    with pytest.raises(ImageLoadError, match='over the limit of 50,000'):
        load_image(big, max_pixels=50_000)
    assert load_image(big, max_pixels=None).shape == (200, 300, 3)


def test_empty_text_missing_and_truncated_files(tmp_path):
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(ImageLoadError, match=r'empty\.jpg: the file is empty'):
        load_image(empty)
    text = tmp_path / 'notes.jpg'
    text.write_text('this is not a picture\n')
    with pytest.raises(ImageLoadError, match=r"notes\.jpg: not an image .*'this is not a picture"):
        load_image(text)
    with pytest.raises(ImageLoadError, match='no such file'):
        load_image(tmp_path / 'missing.png')
    good = _save(tmp_path, 'ok.jpg', Image.new('RGB', (64, 64), (100, 100, 100)))
    truncated = tmp_path / 'truncated.jpg'
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageLoadError, match=r'truncated\.jpg'):
        load_image(truncated)


def test_arrays_in_rgb_bgr_float_and_bad_shapes():
    bgr = np.zeros((3, 3, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    np.testing.assert_array_equal(load_image(bgr, color='bgr')[0, 0], [0, 0, 255])
    np.testing.assert_array_equal(load_image(bgr, color='rgb')[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(load_image(np.full((2, 2), 0.5))[0, 0], [128, 128, 128])
    with pytest.raises(ImageLoadError, match=r'shape \(2, 2, 5\)'):
        load_image(np.zeros((2, 2, 5), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match='dtype int64'):
        load_image(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match='color must be'):
        load_image(bgr, color='hsv')


def test_folders_expand_to_sorted_image_files(tmp_path):
    (tmp_path / 'sub').mkdir()
    for name in ('b.png', 'a.JPG', 'sub/c.webp', 'readme.txt'):
        (tmp_path / name).write_bytes(b'x')
    items = expand_inputs([tmp_path, np.zeros((2, 2))])
    assert [i.name for i in items] == [str(tmp_path / n) for n in ('a.JPG', 'b.png', 'sub/c.webp')] + ['<ndarray 1>']


@pytest.mark.parametrize('head, expected', [
    (b'\x00\x00\x00\x1cftypisom\x00\x00\x02\x00', ('video', 'MP4')),
    (b'\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00', ('video', 'QuickTime MOV')),
    (b'\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00', ('video', '3GP')),
    (b'\x00\x00\x00\x18ftypheic\x00\x00\x00\x00', ('image', 'HEIC')),
    (b'\x00\x00\x00\x1cftypavif\x00\x00\x00\x00', ('image', 'AVIF')),
    (b'RIFF\x24\x00\x00\x00AVI LIST', ('video', 'AVI')),
    (b'RIFF\x24\x00\x00\x00WEBPVP8 ', ('image', 'WebP')),
    (b'\x1aE\xdf\xa3\x9fB\x86\x81\x01', ('video', 'Matroska/WebM')),
    (b'FLV\x01\x05\x00\x00\x00\x09', ('video', 'FLV')),
    (b'0&\xb2u\x8ef\xcf\x11\xa6\xd9', ('video', 'ASF/WMV')),
    (b'\x00\x00\x01\xba\x44\x00', ('video', 'MPEG program stream')),
    ((b'\x47' + b'\x00' * 187) * 3, ('video', 'MPEG transport stream')),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF', ('image', 'JPEG')),
    (b'hello, not a photo', (None, None)),
])
def test_file_signatures(tmp_path, head, expected):
    path = tmp_path / 'file'
    path.write_bytes(head)
    assert sniff_format(path) == expected


def test_a_video_read_as_an_image_says_add_video(tmp_path):
    (tmp_path / 'clip.mkv').write_bytes(b'\x1aE\xdf\xa3\x9fB\x86\x81\x01' + b'\x00' * 64)
    with pytest.raises(ImageLoadError) as err:
        load_image(tmp_path / 'clip.mkv')
    assert str(err.value) == (f'{tmp_path / "clip.mkv"}: looks like a video (Matroska/WebM), not an image: add '
                              f'--video (in Python: FERPredictor.predict_video)')


def test_folders_skip_hidden_entries_unless_asked(tmp_path):
    for name in ('a.jpg', 'sub/b.png', '.thumbnails/c.jpg', '._a.jpg', 'sub/.d.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    items = expand_inputs([tmp_path, tmp_path / '._a.jpg'])  # a hidden file named explicitly is read
    assert [i.relative for i in items] == ['a.jpg', 'sub/b.png', '._a.jpg']
    assert [i.name for i in items][:2] == [str(tmp_path / 'a.jpg'), str(tmp_path / 'sub' / 'b.png')]
    assert [i.relative for i in expand_inputs(tmp_path, include_hidden=True)] == [
        '._a.jpg', '.thumbnails/c.jpg', 'a.jpg', 'sub/.d.png', 'sub/b.png']
