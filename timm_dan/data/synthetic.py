"""A procedurally drawn facial-expression data set: runs everywhere, downloads nothing.

Each class is drawn from its FACS prototype (the action units, AUs, that define it):

    neutral   no AU
    happy     AU6 cheek raiser + AU12 lip-corner puller
    sad       AU1 inner-brow raiser + AU4 brow lowerer + AU15 lip-corner depressor
    surprise  AU1 + AU2 outer-brow raiser + AU5 upper-lid raiser + AU26 jaw drop
    fear      AU1 + AU2 + AU4 + AU5 + AU20 lip stretcher + AU26
    disgust   AU9 nose wrinkler + AU15 + AU16 lower-lip depressor
    anger     AU4 + AU5 + AU7 lid tightener + AU23 lip tightener
    contempt  unilateral AU12 + AU14 dimpler

over a random identity (face shape, feature sizes and positions, skin, hair), head pose (roll, yaw,
scale, shift), lighting, background, blur, noise and partial occlusion. Classes share AUs (sad and
disgust share AU15, surprise and fear AU1+2+5+26, ...), AU intensities vary and a few AUs fire
weakly at random, so telling classes apart needs several facial regions at once; the pose and the
clutter defeat a linear model on raw pixels.

Each face also has valence and arousal: its expression's place on Russell's circumplex (`CIRCUMPLEX`,
an angle, 0 degrees = pleasant, 90 = aroused) at a distance from the centre equal to its intensity (the
mean intensity of its prototype AUs, 0.75..1, drawn into the face); neutral sits at the centre.
"""
from collections.abc import Iterator
from typing import Optional

import cv2
import numpy as np

from ..labels import canonical_names

__all__ = ['AUS', 'PROTOTYPES', 'CIRCUMPLEX', 'draw_faces', 'valence_arousal', 'generate_examples']

AUS = ('AU1', 'AU2', 'AU4', 'AU5', 'AU6', 'AU7', 'AU9', 'AU12', 'AU14', 'AU15', 'AU16', 'AU20', 'AU23', 'AU26')
_AU = {name: i for i, name in enumerate(AUS)}

PROTOTYPES: dict[str, tuple[str, ...]] = {
    'neutral': (),
    'happy': ('AU6', 'AU12'),
    'sad': ('AU1', 'AU4', 'AU15'),
    'surprise': ('AU1', 'AU2', 'AU5', 'AU26'),
    'fear': ('AU1', 'AU2', 'AU4', 'AU5', 'AU20', 'AU26'),
    'disgust': ('AU9', 'AU15', 'AU16'),
    'anger': ('AU4', 'AU5', 'AU7', 'AU23'),
    'contempt': ('AU12', 'AU14'),  # unilateral: one side only
}

CIRCUMPLEX: dict[str, float] = {
    # degrees on Russell's circumplex (Russell 1980, "A circumplex model of affect", Fig. 2: happy 8, astonished
    # 69, angry 99, afraid 117, sad 208); disgust and contempt are not among his words: placed between
    # distressed (138) and miserable (189), unpleasant and mildly aroused, disgust the more aroused
    'happy': 8.0, 'surprise': 69.0, 'anger': 99.0, 'fear': 117.0, 'disgust': 150.0, 'contempt': 165.0, 'sad': 208.0,
}

_MIN_INTENSITY = 0.75  # prototype AUs fire at 0.75..1: a weaker expression is ambiguous at 64 px
_SPURIOUS_MAX = 0.25  # the most a non-prototype AU fires
_OCCLUSION_P = 0.15  # probability of a patch over one facial region
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
_ONE = 1 << _SHIFT


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _sample_params(rng: np.random.Generator, labels: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """All random choices for len(labels) faces, drawn at once (vectorised, reproducible by rng)."""
    n = len(labels)
    u = rng.uniform
    au = np.zeros((n, len(AUS)), np.float32)
    for k, name in enumerate(names):
        rows = labels == k
        for a in PROTOTYPES[name]:
            au[rows, _AU[a]] = u(_MIN_INTENSITY, 1.0, rows.sum())
    # weak spurious activity: any AU may fire a little on any face
    au = np.maximum(au, u(0, 1, au.shape) ** 8 * _SPURIOUS_MAX)
    return dict(
        au=au,
        side=rng.choice([-1.0, 1.0], n),  # side of unilateral AUs (contempt)
        # identity
        face_w=u(0.27, 0.34, n), face_h=u(0.36, 0.44, n),
        eye_dx=u(0.10, 0.135, n), eye_y=u(-0.10, -0.04, n), eye_w=u(0.045, 0.06, n), eye_h=u(0.022, 0.032, n),
        brow_gap=u(0.045, 0.07, n), brow_th=u(0.012, 0.022, n),
        nose_len=u(0.09, 0.13, n), mouth_y=u(0.17, 0.22, n), mouth_w=u(0.08, 0.11, n), lip_th=u(0.008, 0.016, n),
        rest_curve=u(-0.012, 0.012, n),
        skin=(np.array([70, 45, 35]) + u(0, 1, (n, 1)) * np.array([170, 160, 150])
              + rng.normal(0, 12, (n, 3))).clip(0, 255),
        hair=rng.uniform(0, 120, (n, 3)),
        hair_h=u(0.0, 0.16, n),
        # pose
        roll=rng.normal(0, 9, n).clip(-25, 25), yaw=u(-0.25, 0.25, n), scale=u(0.9, 1.15, n),
        cx=u(-0.07, 0.07, n), cy=u(-0.07, 0.07, n),
        # scene
        bg=rng.uniform(0, 255, (n, 2, 3)), bg_angle=u(0, 2 * np.pi, n),
        light=u(-0.35, 0.35, n), light_angle=u(0, 2 * np.pi, n), gain=u(0.7, 1.2, n),
        blur=u(0, 1, n), noise=u(0, 10, n),
        clutter=rng.integers(0, 4, n), clutter_seed=rng.integers(0, 2**31, n),
        occlude=u(0, 1, n) < _OCCLUSION_P, occ_region=rng.integers(0, 4, n), occ_color=rng.uniform(0, 255, (n, 3)),
        occ_size=u(0.12, 0.2, n),
    )


def _draw_face(canvas: np.ndarray, p: dict[str, np.ndarray], i: int) -> None:
    """Draw face i in a canonical upright frame (unit = image size, origin = image centre)."""
    s = canvas.shape[0]
    a = {name: float(p['au'][i, j]) for name, j in _AU.items()}
    yaw = float(p['yaw'][i])
    skin = tuple(float(c) for c in p['skin'][i])
    dark = tuple(0.35 * c for c in skin)
    lip = (skin[0] * 0.55, skin[1] * 0.45, skin[2] * 0.75)

    def X(x: float) -> float:  # yaw: features slide sideways and the far half narrows
        return s * (0.5 + x * (1 - 0.35 * yaw * np.sign(x)) + 0.12 * yaw)

    def Y(y: float) -> float:
        return s * (0.5 + y)

    def line(pts, color, th):
        pts = np.array([(X(x), Y(y)) for x, y in pts], np.float32)
        cv2.polylines(canvas, [_poly(pts)], False, color, max(1, int(round(th * s))), cv2.LINE_AA, _SHIFT)

    fw, fh = float(p['face_w'][i]), float(p['face_h'][i])
    # hair cap, face, ears
    hair = tuple(float(c) for c in p['hair'][i])
    cv2.ellipse(canvas, _pt(X(0), Y(-0.08)), _pt(fw * s * 1.06, (fh * 0.8 + p['hair_h'][i]) * s), 0, 180, 360,
                hair, -1, cv2.LINE_AA, _SHIFT)
    for side in (-1, 1):
        cv2.ellipse(canvas, _pt(X(side * fw * 0.98), Y(-0.02)), _pt(0.035 * s, 0.07 * s), 0, 0, 360, skin, -1,
                    cv2.LINE_AA, _SHIFT)
    cv2.ellipse(canvas, _pt(X(0), Y(0)), _pt(fw * s * (1 - 0.15 * abs(yaw)), fh * s), 0, 0, 360, skin, -1,
                cv2.LINE_AA, _SHIFT)

    # eyes: AU5 widens, AU6 and AU7 narrow; AU6 adds cheek folds, AU7 a straight raised lower lid
    ex, ey, ew = float(p['eye_dx'][i]), float(p['eye_y'][i]), float(p['eye_w'][i])
    eh = float(p['eye_h'][i]) * (1 + 1.4 * a['AU5'] - 0.45 * a['AU7'] - 0.5 * a['AU6'])
    for side in (-1, 1):
        cx, cy = X(side * ex), Y(ey)
        cv2.ellipse(canvas, _pt(cx, cy), _pt(ew * s, max(eh, 0.004) * s), 0, 0, 360, (245, 245, 240), -1,
                    cv2.LINE_AA, _SHIFT)
        r = min(0.6 * ew, 0.024) * s
        cv2.circle(canvas, _pt(cx, cy + 0.002 * s), int(r * _ONE), (40, 30, 25), -1, cv2.LINE_AA, _SHIFT)
        # lids in skin colour cut the iris to the opening
        cv2.ellipse(canvas, _pt(cx, cy - (max(eh, 0.004) + 0.03) * s), _pt(ew * 1.3 * s, 0.03 * s), 0, 0, 360,
                    skin, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(canvas, _pt(cx, cy + (max(eh, 0.004) + 0.03) * s), _pt(ew * 1.3 * s, 0.03 * s), 0, 0, 360,
                    skin, -1, cv2.LINE_AA, _SHIFT)
        line([(side * (ex - ew), ey - eh), (side * ex, ey - eh * 1.25), (side * (ex + ew), ey - eh)], dark, 0.008)
        if a['AU7'] > 0.3:
            line([(side * (ex - ew), ey + eh), (side * (ex + ew), ey + eh * 0.7)], dark, 0.009 * a['AU7'])
        if a['AU6'] > 0.3:
            y = ey + eh
            fold = [(side * (ex - ew), y + 0.03), (side * ex, y + 0.045), (side * (ex + ew * 1.2), ey + 0.02)]
            line(fold, dark, 0.008 * a['AU6'])

    # brows: AU1 raises the inner end, AU2 the outer end, AU4 lowers and draws the inner ends together
    gap, bt = float(p['brow_gap'][i]), float(p['brow_th'][i])
    for side in (-1, 1):
        inner_x = side * (ex - ew * 0.9 - 0.03 * a['AU4'])
        inner_y = ey - gap - 0.06 * a['AU1'] + 0.045 * a['AU4']
        mid_y = ey - gap - 0.012 - 0.025 * a['AU1'] - 0.04 * a['AU2'] + 0.015 * a['AU4']
        outer_y = ey - gap + 0.002 - 0.055 * a['AU2']
        line([(inner_x, inner_y), (side * ex, mid_y), (side * (ex + ew * 1.3), outer_y)], dark, bt)
        if a['AU4'] > 0.3:  # vertical furrow between the brows
            line([(side * 0.012, ey - gap + 0.01), (side * 0.008, ey - gap + 0.04)], dark, 0.006 * a['AU4'])

    # nose; AU9 wrinkles the bridge and lifts the nostrils
    nl = float(p['nose_len'][i])
    nose_tip = ey + nl - 0.02 * a['AU9']
    line([(0, ey + 0.02), (0.012, nose_tip), (0, nose_tip + 0.01)], dark, 0.006)
    for side in (-1, 1):
        cv2.ellipse(canvas, _pt(X(side * (0.022 + 0.008 * a['AU9'])), Y(nose_tip + 0.008)),
                    _pt(0.012 * s, 0.007 * s), 0, 0, 360, dark, -1, cv2.LINE_AA, _SHIFT)
    if a['AU9'] > 0.3:
        for k in range(3):
            yk = ey + 0.012 + 0.013 * k
            line([(-0.035, yk), (0, yk + 0.008), (0.035, yk)], dark, 0.008 * a['AU9'])

    # mouth: corners (AU12 up and out, AU15 down, AU20 stretched, AU23 narrowed), lips (AU23 thin),
    # opening (AU26 jaw drop, AU16 lower lip down showing teeth), AU14 dimple
    my, mw, lt = float(p['mouth_y'][i]), float(p['mouth_w'][i]), float(p['lip_th'][i])
    side_c = float(p['side'][i])
    corners = []
    for side in (-1, 1):
        au12 = a['AU12'] if (a['AU14'] < 0.5 or side == side_c) else a['AU12'] * 0.15
        dx = mw * (1 + 0.2 * au12 + 0.5 * a['AU20'] - 0.35 * a['AU23'])
        dy = float(p['rest_curve'][i]) - 0.05 * au12 + 0.045 * a['AU15'] + 0.004 * a['AU20']
        dimple = a['AU14'] > 0.5 and side == side_c
        if dimple:  # AU14 tightens the raised corner up and in, and creases the cheek beside it
            dx, dy = dx - 0.012 * a['AU14'], dy - 0.015 * a['AU14']
            crease = [(dx + 0.01, dy - 0.022), (dx + 0.02, dy - 0.004), (dx + 0.013, dy + 0.016)]
            line([(side * x, my + y) for x, y in crease], dark, 0.008)
        corners.append((side * dx, my + dy))
    open_ = 0.08 * a['AU26'] + 0.035 * a['AU16']
    lt = lt * (1 - 0.6 * a['AU23'])
    (lx, ly), (rx, ry) = corners
    upper = [(lx, ly), (lx * 0.5, my - 0.006), (0, my - 0.002), (rx * 0.5, my - 0.006), (rx, ry)]
    bottom = my + open_ + 0.004
    lower = [(rx, ry), (rx * 0.5, bottom - 0.1 * open_), (0, bottom), (lx * 0.5, bottom - 0.1 * open_)]
    if open_ > 0.01:
        hole = np.array([(X(x), Y(y)) for x, y in upper + lower], np.float32)
        cv2.fillPoly(canvas, [_poly(hole)], (35, 15, 20), cv2.LINE_AA, _SHIFT)
        if a['AU16'] > 0.3:  # lower teeth
            teeth = [(lx * 0.6, my + open_ * 0.55), (rx * 0.6, my + open_ * 0.55), (rx * 0.5, my + open_ * 0.85),
                     (lx * 0.5, my + open_ * 0.85)]
            cv2.fillPoly(canvas, [_poly(np.array([(X(x), Y(y)) for x, y in teeth], np.float32))], (235, 235, 225),
                         cv2.LINE_AA, _SHIFT)
    line(upper, lip, lt + 0.004)
    line(lower + [(lx, ly)], lip, lt + 0.004)


def _scene(p: dict[str, np.ndarray], i: int, s: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    gx, gy = grid
    t = np.cos(p['bg_angle'][i]) * gx + np.sin(p['bg_angle'][i]) * gy
    w = (t - t.min()) / (np.ptp(t) + 1e-6)
    bg = p['bg'][i, 0] * (1 - w[..., None]) + p['bg'][i, 1] * w[..., None]
    bg = bg.astype(np.uint8)
    rng = np.random.default_rng(int(p['clutter_seed'][i]))
    for _ in range(int(p['clutter'][i])):  # background shapes
        c = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x, y = rng.uniform(0, s, 2)
        cv2.circle(bg, _pt(x, y), int(rng.uniform(0.05, 0.25) * s * _ONE), c, -1, cv2.LINE_AA, _SHIFT)
    return bg


def valence_arousal(au: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """N x 2 (valence, arousal) of faces with AU intensities `au` (N x len(AUS)): the class's circumplex direction
    times the mean intensity of its prototype AUs; (0, 0) for neutral."""
    out = np.zeros((len(labels), 2), np.float32)
    for k, name in enumerate(names):
        rows = labels == k
        if name in CIRCUMPLEX and rows.any():
            intensity = au[np.ix_(rows, [_AU[a] for a in PROTOTYPES[name]])].mean(1)
            angle = np.deg2rad(CIRCUMPLEX[name])
            out[rows] = intensity[:, None] * np.array([np.cos(angle), np.sin(angle)], np.float32)
    return out


def draw_faces(labels: np.ndarray, image_size: int, rng: np.random.Generator,
               names: tuple[str, ...], params: Optional[dict[str, np.ndarray]] = None) -> Iterator[np.ndarray]:
    """Yield one HxWx3 uint8 RGB image per label (an index into `names`, the class names); `params` (from
    `_sample_params` on the same `rng`) when the caller needs them too, e.g. for `valence_arousal`."""
    s = image_size
    p = _sample_params(rng, labels, names) if params is None else params
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    noise_rng = np.random.default_rng(rng.integers(0, 2**63))
    for i in range(len(labels)):
        face = np.zeros((s, s, 3), np.uint8)
        _draw_face(face, p, i)
        mask = np.zeros((s, s), np.uint8)
        cv2.ellipse(mask, _pt(s / 2, s * 0.46), _pt(s * 0.42, s * 0.58), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        mask = cv2.bitwise_and(mask, (face.max(axis=2) > 0).astype(np.uint8) * 255)
        # pose: roll, scale and shift of the whole head
        m = cv2.getRotationMatrix2D((s / 2, s / 2), float(p['roll'][i]), float(p['scale'][i]))
        m[:, 2] += (p['cx'][i] * s, p['cy'][i] * s)
        face = cv2.warpAffine(face, m, (s, s), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, m, (s, s), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255
        img = _scene(p, i, s, (gx, gy)) * (1 - mask) + face * mask
        if p['occlude'][i]:  # a patch over one region: an eye, the other eye, the mouth or the brows
            ox, oy = [(-0.12, -0.07), (0.12, -0.07), (0, 0.19), (0, -0.15)][int(p['occ_region'][i])]
            ox, oy = m @ np.array([s * (0.5 + ox), s * (0.5 + oy), 1.0])
            h = p['occ_size'][i] * s / 2
            cv2.rectangle(img, _pt(ox - h, oy - h * 0.6), _pt(ox + h, oy + h * 0.6),
                          tuple(float(c) for c in p['occ_color'][i]), -1, cv2.LINE_AA, _SHIFT)
        # lighting: a directional gradient and a global gain
        shade = 1 + p['light'][i] * 2 * (np.cos(p['light_angle'][i]) * gx + np.sin(p['light_angle'][i]) * gy)
        img = img * (shade[..., None] * p['gain'][i])
        if p['blur'][i] > 0.4:
            img = cv2.GaussianBlur(img, (0, 0), float(p['blur'][i]) * s / 100)
        img = img + noise_rng.normal(0, p['noise'][i], img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)


def generate_examples(num_samples: int, image_size: int, num_classes: int, seed: int,
                      split_index: int = 0) -> Iterator[dict]:
    """Examples for `datasets.Dataset.from_generator`: balanced classes, with valence and arousal, deterministic by
    (seed, split_index)."""
    names = canonical_names(num_classes)
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_index]))
    labels = rng.permutation(np.arange(num_samples) % num_classes)
    params = _sample_params(rng, labels, names)
    affect = valence_arousal(params['au'], labels, names)
    faces = draw_faces(labels, image_size, rng, names, params)
    for i, (label, img, (valence, arousal)) in enumerate(zip(labels, faces, affect, strict=True)):
        ok, png = cv2.imencode('.png', img[..., ::-1])
        yield {'image': {'bytes': png.tobytes(), 'path': None}, 'label': int(label), 'file': f'synthetic_{i:06d}.png',
               'valence': float(valence), 'arousal': float(arousal)}


def synthetic_sizes(num_samples: int, num_validation_samples: Optional[int]) -> dict[str, int]:
    return {'train': num_samples, 'validation': num_validation_samples or max(num_samples // 4, 1)}
