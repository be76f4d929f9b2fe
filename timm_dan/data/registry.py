"""The FER data sets timm-dan reads: their splits, classes, official layouts and citations."""
from dataclasses import dataclass

__all__ = ['FERDatasetInfo', 'FER_DATASETS']


@dataclass(frozen=True)
class FERDatasetInfo:
    name: str
    title: str
    splits: tuple[str, ...]
    num_classes: tuple[int, ...]  # class counts it can be loaded with (canonical order, `LABELS[:K]`)
    layout: str  # the official layout under `data_dir`, shown in errors and docs
    citation: str
    needs_data_dir: bool = True


FER_DATASETS: dict[str, FERDatasetInfo] = {info.name: info for info in (
    FERDatasetInfo(
        name='rafdb', title='RAF-DB (basic emotion subset)', splits=('train', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5" (labels 1..7: surprise, fear, disgust,\n'
            '                                     happiness, sadness, anger, neutral)\n'
            '  Image/aligned/train_00001_aligned.jpg   (100x100 aligned faces; aligned=False reads\n'
            '  Image/original/train_00001.jpg          the original images instead)'
        ),
        citation=('Li, Deng, Du. Reliable Crowdsourcing and Deep Locality-Preserving Learning for Expression '
                  'Recognition in the Wild. CVPR 2017.'),
    ),
    FERDatasetInfo(
        name='affectnet', title='AffectNet (manually annotated)', splits=('train', 'validation'), num_classes=(7, 8),
        layout=(
            'DATA_DIR/ holding either the full release\n'
            '  Manually_Annotated_file_lists/training.csv, validation.csv   (subDirectory_filePath, face_x, face_y,\n'
            '      face_width, face_height, facial_landmarks, expression, valence, arousal)\n'
            '  Manually_Annotated_Images/<subDirectory_filePath>\n'
            'or the compact release\n'
            '  train_set/images/N.jpg, train_set/annotations/N_exp.npy (+ N_val.npy, N_aro.npy, N_lnd.npy)\n'
            '  val_set/images/N.jpg,   val_set/annotations/N_exp.npy   ...\n'
            'expression codes 0..7 = neutral, happy, sad, surprise, fear, disgust, anger, contempt;\n'
            '8, 9, 10 (none, uncertain, no-face) are dropped'
        ),
        citation=('Mollahosseini, Hasani, Mahoor. AffectNet: A Database for Facial Expression, Valence, and Arousal '
                  'Computing in the Wild. IEEE Trans. Affective Computing 10(1), 2019.'),
    ),
    FERDatasetInfo(
        name='sfew', title='SFEW 2.0', splits=('train', 'validation'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  Train/<Class>/*.png|jpg   class folders Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise\n'
            '  Val/<Class>/*.png|jpg     (any case; synonyms such as anger, happiness, sadness accepted)'
        ),
        citation=('Dhall, Goecke, Lucey, Gedeon. Static Facial Expression Analysis in Tough Conditions: Data, '
                  'Evaluation Protocol and Benchmark. ICCV Workshops 2011.'),
    ),
    FERDatasetInfo(
        name='fer2013', title='FER2013', splits=('train', 'validation', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  fer2013.csv   columns emotion,pixels,Usage (48x48 grayscale as 2304 space-separated values;\n'
            '                Usage Training / PublicTest / PrivateTest -> train / validation / test;\n'
            '                emotion 0..6 = angry, disgust, fear, happy, sad, surprise, neutral)'
        ),
        citation=('Goodfellow et al. Challenges in Representation Learning: A Report on Three Machine Learning '
                  'Contests. ICONIP 2013.'),
    ),
    FERDatasetInfo(
        name='ferplus', title='FERPlus', splits=('train', 'validation', 'test'), num_classes=(8,),
        layout=(
            'DATA_DIR/\n'
            '  fer2013new.csv   columns Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust,\n'
            '                   fear, contempt, unknown, NF (10 annotator votes per row)\n'
            '  fer2013.csv      the FER2013 pixels, same row order'
        ),
        citation=('Barsoum, Zhang, Canton Ferrer, Zhang. Training Deep Networks for Facial Expression Recognition '
                  'with Crowd-Sourced Label Distribution. ICMI 2016.'),
    ),
    FERDatasetInfo(
        name='expw', title='Expression in-the-Wild (ExpW)', splits=('train', 'validation', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  label/label.lst   lines "image_name face_id top left right bottom confidence expression"\n'
            '                    (expression 0..6 = angry, disgust, fear, happy, sad, surprise, neutral)\n'
            '  image/origin/<image_name>'
        ),
        citation=('Zhang, Luo, Loy, Tang. From Facial Expression Recognition to Interpersonal Relation Prediction. '
                  'IJCV 126, 2018.'),
    ),
    FERDatasetInfo(
        name='synthetic', title='Synthetic FACS-prototype faces (built in)', splits=('train', 'validation'),
        num_classes=(2, 3, 4, 5, 6, 7, 8),
        layout='(none: generated in memory, deterministic by seed)',
        citation='timm-dan procedural demo set; FACS prototypes after Ekman, Friesen, Hager. FACS manual, 2002.',
        needs_data_dir=False,
    ),
)}
