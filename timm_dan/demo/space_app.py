"""The timm-dan web demo as a Hugging Face Space (Gradio SDK): `timm-dan hub space` writes this file as the
Space's app.py, beside a copy of the package; `python app.py` in that folder runs the same page locally.

The model: `$TIMM_DAN_DEMO_MODEL` (a Space variable: any registered name or tag, `hf-hub:NAMESPACE/NAME`,
`local-dir:FOLDER`), else the Hub folder `model/` beside this file (a Space's own weights), else the default
pretrained `dan_resnet18`.
"""
from pathlib import Path

from timm_dan.demo import build_demo, launch
from timm_dan.demo.model import space_model

demo = build_demo(space_model(Path(__file__).parent))

if __name__ == '__main__':
    launch(demo)  # address and port from $GRADIO_SERVER_NAME / $GRADIO_SERVER_PORT, as a Space sets them
