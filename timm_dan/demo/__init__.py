"""The web demo: `timm-dan demo`, or `app.py` as a Hugging Face Space (Gradio; `pip install "timm-dan[demo]"`).

    from timm_dan.demo import build_demo
    build_demo('dan_resnet18').launch()
"""
from .app import build_demo, launch

__all__ = ['build_demo', 'launch']
