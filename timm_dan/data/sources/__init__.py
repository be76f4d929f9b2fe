"""One file per FER data set: its reader (`scan(root, ...) -> SourceScan`) and its declaration `SOURCE` (`FERSource`:
info, options, label map, model-card entries), collected by `timm_dan.data.registry`."""
