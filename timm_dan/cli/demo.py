"""`timm-dan demo`: the web demo on this machine (Gradio)."""
import argparse
import sys

DETECTORS = ('auto', 'yunet', 'haar')  # = detectors.DETECTORS less 'none': the demo looks for faces in photos


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        'demo', help='Serve the web demo: photos, webcam and videos in the browser',
        description='Serve the web demo (Gradio) until Ctrl-C: upload photos, stream the webcam or analyse a video '
                    'file; see each face boxed and labelled, the probabilities, the heads\' attention, and download '
                    'the JSON. A model that cannot be loaded (e.g. offline without cached weights) is explained on '
                    'the page. Exit status 0 when the server stops, 2 when it cannot start (Gradio not installed, '
                    'port in use).',
    )
    demo.add_argument('--model', default=None, metavar='NAME',
                      help='registered name/tag (pretrained), hf-hub:, local-dir: or a Hub folder path such as '
                           'runs/synthetic/best (default: $TIMM_DAN_DEMO_MODEL, else dan_resnet18)')
    demo.add_argument('--detector', default='auto', choices=DETECTORS)
    demo.add_argument('--device', default=None, help='torch device (default: CUDA when available, else CPU)')
    demo.add_argument('--port', type=int, default=None, metavar='P', help='port (default: 7860, or the next free one)')
    demo.add_argument('--host', default=None, metavar='HOST',
                      help='address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 for the network)')
    demo.add_argument('--share', action='store_true', help="also serve through a public gradio.live link")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    try:
        from ..demo import build_demo, launch
        from ..demo.model import DEFAULT_MODEL
    except ImportError as e:
        print(f'timm-dan demo: error: the demo needs Gradio ({e}): pip install "timm-dan[demo]"', file=sys.stderr)
        return 2
    demo = build_demo(args.model or DEFAULT_MODEL, detector=args.detector, device=args.device)
    try:
        launch(demo, port=args.port, host=args.host, share=args.share)  # serves until Ctrl-C
    except OSError as e:  # the port is taken, the address is not this machine's
        print(f'timm-dan demo: error: could not serve on {args.host or "127.0.0.1"}:{args.port or 7860}: '
              f'{" ".join(str(e).split())}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while starting (Gradio handles it once serving)
        demo.close()
    return 0
