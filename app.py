"""The timm-dan web demo as a Hugging Face Space (Gradio SDK): `python app.py`, or the Space runs it as it is.

The model is `$TIMM_DAN_DEMO_MODEL` (a Space variable: any registered name or tag, `hf-hub:NAMESPACE/NAME`,
`local-dir:FOLDER`), else the default pretrained `dan_resnet18`. Locally, `timm-dan demo` does the same with options.
"""
from timm_dan.demo import build_demo, launch
from timm_dan.demo.model import DEFAULT_MODEL

demo = build_demo(DEFAULT_MODEL)

if __name__ == '__main__':
    launch(demo)  # address and port from $GRADIO_SERVER_NAME / $GRADIO_SERVER_PORT, as a Space sets them
