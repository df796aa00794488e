#!/usr/bin/env python
"""Train a CRNN with CTC, or an audio classifier or tagger, on one or more LMDBs in the standard layout.

    python tools/train.py --data lmdb/ --val val_lmdb/ --alphabet alphanumeric --max-steps 20000
    python tools/train.py --data lmdb/ synth:synth.json --data-ratios 0.3 0.7 --max-steps 20000   # + words rendered in the loader
    torchrun --nproc_per_node=2 tools/train.py --data lmdb/ ...   # DistributedDataParallel
    python tools/train.py --data lmdb/ --max-steps 20000 --resume      # go on from runs/crnn/last.pt
    python tools/train.py --kind speech --data speech_lmdb/ --alphabet datasets/speech_chars.txt \
        --sample-rate 8000 --n-mels 64 --max-width 800 --max-steps 3000   # audio LMDBs -> log-mel "images"
    python tools/train.py --kind classify --data clips/ --val clips_val/ --alphabet classes.txt --arch cnn10 \
        --sample-rate 8000 --mixup 0.2 --balanced --max-steps 2000   # a class name per clip (tag: "a,b" tags per clip)

Exit status: 0 done; 1 training stopped (NaN/inf loss that persists, no decodable image);
2 bad input (one line on stderr); 128+N stopped by signal N (SIGINT, SIGTERM) after saving last.pt.
"""

from __future__ import annotations

import argparse
import sys

from crnn_ocr.classify.config import CLASSIFIER_ARCHS, POOLINGS
from crnn_ocr.cli import ArgumentParser, DefaultsHelpFormatter, run_cli
from crnn_ocr.tasks import KINDS


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)  # every option's default in --help
    data = p.add_argument_group("data")
    data.add_argument("--data", nargs="+", required=True, help="training LMDB folder(s) in the standard layout, or synth:CONFIG.json: "
                      "words rendered in the loader's workers, fresh each epoch (a JSON object of datasets/synth_text.py's options "
                      "with a 'count' per epoch; crnn_ocr.synth.online), or staves:CONFIG.json: music staves engraved in the "
                      "loader's workers from an LMDB's or a text file's token sequences (crnn_ocr.synth.online_music)")
    data.add_argument("--data-ratios", nargs="+", type=float, help="share of each batch drawn from each --data source (default: by size)")
    data.add_argument("--val", nargs="*", default=[], help="validation LMDB folder(s): word accuracy every --val-every steps picks best.pt")
    data.add_argument("--alphabet", help="preset (digits, alphanumeric: 36 case-folded symbols, alphanumeric_cased, printable) "
                      "or a file, one symbol per line (default: the --init-from checkpoint's, else alphanumeric); "
                      "--kind classify/tag: the class list file, one class per line")
    data.add_argument("--no-augment", action="store_true", help="train on the images as they are (no albumentations)")
    data.add_argument("--augment", default="default", choices=["light", "default", "strong"],
                      help="augmentation strength: probabilities and magnitudes scale together (speech: VTLP's warp too)")
    data.add_argument("--crop-jitter", type=float, default=0.0, metavar="SHARE", help="images: share of training images prepared as a "
                      "random crop view (width x0.8-1.3; a border, a trim or side columns) before augmentation (0: off)")
    data.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    model = p.add_argument_group("model and input")
    model.add_argument("--arch", default="crnn_compact", choices=["crnn", "crnn_compact", "resnet", "mobilenetv3", "dtrb_vgg", "ds2", *CLASSIFIER_ARCHS],
                       help="trunk: crnn (the paper's, 8.3M parameters), crnn_compact (a quarter), torchvision resnet/mobilenetv3, dtrb_vgg, "
                       "ds2 (DeepSpeech2-style, for speech); classify/tag also: convrnn (GRU windows), convrnn_lstm, conv1d, cnn6/cnn10/cnn14 (PANNs)")
    model.add_argument("--height", type=int, help="image height in pixels (default 32, or the --init-from checkpoint's)")
    model.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1 gray, 3 RGB")
    model.add_argument("--max-width", type=int, default=400,
                       help="training images wider than this are squeezed to it; reading uses it as the window for longer lines")
    model.add_argument("--width-scale", type=float, help="stretch images horizontally by this after resizing to the height "
                       "(more output frames per glyph for narrow letters; default 1, or the --init-from checkpoint's when it is the same --kind)")
    model.add_argument("--hidden-size", type=int, help="LSTM units per direction (default: the arch's)")
    model.add_argument("--kind", default="text", choices=list(KINDS), help="what the model reads or says (stored in the checkpoint): "
                       "text, score, speech (CTC); classify (one class per clip), tag (several)")
    model.add_argument("--pooling", choices=POOLINGS, help="classify/tag: pooling over time (default: attention on CRNN trunks, else meanmax)")
    model.add_argument("--mixup", type=float, default=0.0, help="classify/tag: mixup of log-mels and targets, Beta(a, a) (0: off)")
    model.add_argument("--balanced", action="store_true", help="classify/tag: draw every class equally often")
    model.add_argument("--sample-rate", type=int, default=16000, help="speech: audio is resampled to this rate (Hz)")
    model.add_argument("--n-mels", type=int, help="speech: log-mel bins, the model's input height (instead of --height; "
                       "default 64, or the --init-from speech checkpoint's)")
    model.add_argument("--feature-norm", choices=["bin", "clip"], help="audio: standardize log-mels per mel bin (bin: speech) or per clip (clip: sounds)")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--batch-size", type=int, default=64, help="images per step (per process with torchrun)")
    opt.add_argument("--optimizer", default="adamw", choices=["adamw", "adadelta"], help="AdamW, or the paper's Adadelta")
    opt.add_argument("--lr", type=float, help="peak learning rate (default 1e-3 AdamW, 1.0 Adadelta)")
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    opt.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine", "constant"], help="learning-rate schedule over the run")
    opt.add_argument("--warmup-steps", type=int, help="cosine: linear warm-up steps (default 5%% of the run)")
    opt.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm (0 disables)")
    opt.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                     help="keep an exponential moving average of the weights (e.g. 0.999; its decay warms up as min(DECAY, "
                     "(1+n)/(10+n)) after n steps): validation, best.pt and last.pt's weights are the average; 0: off")
    opt.add_argument("--max-steps", type=int, help="optimizer steps to run (give this or --epochs)")
    opt.add_argument("--epochs", type=int, help="passes over the training data (with --max-steps: whichever ends first)")
    opt.add_argument("--shortest-first", type=int, default=0, metavar="EPOCHS",
                     help="run the first EPOCHS epochs shortest input first, unshuffled (DeepSpeech2's SortaGrad curriculum; default 0)")
    opt.add_argument("--seed", type=int, default=0, help="seeds the data order, augmentation and initialization")
    opt.add_argument("--no-amp", action="store_true", help="disable float16 autocast on CUDA")
    opt.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CPU (faster on CPUs with AMX/AVX512-BF16)")
    opt.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA if present, else the CPU)")
    opt.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC memory format for the model and "
                     "batches (same results within float tolerance; default: on CUDA, off on the CPU)")
    run = p.add_argument_group("checkpoints and logs")
    run.add_argument("--out", default="runs/crnn", help="output folder: last.pt, best.pt, log.csv, curves.png")
    run.add_argument("--resume", nargs="?", const="auto", help="resume from a checkpoint (without a path: OUT/last.pt)")
    run.add_argument("--init-from", help="start from a checkpoint's weights (output layer resized to --alphabet), e.g. "
                     "crnn_ocr/weights/english_crnn_compact.pt")
    run.add_argument("--val-every", type=int, default=500, help="validate (and maybe save best.pt) every this many steps")
    run.add_argument("--save-every", type=int, default=500, help="save last.pt every this many steps")
    run.add_argument("--keep-every", type=int, help="also keep a copy every this many steps, OUT/step-0001000.pt (for weight averages; default: none)")
    run.add_argument("--log-every", type=int, default=20, help="append loss, accuracy and images/s to log.csv every this many steps")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs and validation lines still print)")
    args = p.parse_args(argv)
    if args.max_steps is None and args.epochs is None:
        p.error("give --max-steps or --epochs")
    for flag in ("batch_size", "max_steps", "epochs", "height", "max_width", "val_every", "save_every", "keep_every", "log_every", "sample_rate", "n_mels"):
        v = getattr(args, flag)
        if v is not None and v <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive, got {v}")
    if args.shortest_first < 0:
        p.error(f"--shortest-first must be 0 or more epochs, got {args.shortest_first}")
    if args.crop_jitter and KINDS[args.kind].frontend != "image":
        p.error(f"--crop-jitter: image models only, not --kind {args.kind}")
    if args.mixup < 0:
        p.error(f"--mixup must be 0 (off) or a positive Beta parameter, got {args.mixup}")
    if args.width_scale is not None and not 0.25 <= args.width_scale <= 4:
        p.error(f"--width-scale must be between 0.25 and 4, got {args.width_scale}")
    if args.data_ratios and len(args.data_ratios) != len(args.data):
        p.error(f"--data-ratios: {len(args.data_ratios)} ratios for {len(args.data)} --data sources")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from crnn_ocr.engine import Interrupted, TrainConfig, TrainingStopped, train

    cfg = TrainConfig(
        data=args.data, val=args.val, data_ratios=args.data_ratios, alphabet=args.alphabet, arch=args.arch,
        height=args.height, channels=args.channels, max_width=args.max_width, width_scale=args.width_scale, hidden_size=args.hidden_size,
        kind=args.kind, sample_rate=args.sample_rate, n_mels=args.n_mels, feature_norm=args.feature_norm, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip, ema=args.ema, max_steps=args.max_steps, epochs=args.epochs, val_every=args.val_every,
        save_every=args.save_every, keep_every=args.keep_every, log_every=args.log_every, out_dir=args.out, resume=args.resume,
        init_from=args.init_from, seed=args.seed, num_workers=args.workers,
        augment=False if args.no_augment else (True if args.augment == "default" else args.augment), crop_jitter=args.crop_jitter,
        amp=not args.no_amp, bf16=args.bf16, channels_last=args.channels_last, device=args.device, progress=not args.no_progress,
        pooling=args.pooling, mixup=args.mixup, balanced=args.balanced, shortest_first=args.shortest_first,
    )
    try:
        result = train(cfg)
    except Interrupted as e:  # SIGINT/SIGTERM: last.pt was saved first
        print(f"train.py: {e}", file=sys.stderr)
        return 128 + e.signum
    except TrainingStopped as e:  # persistent NaN/inf loss or unreadable data: not a usage error
        print(f"train.py: training stopped: {e}", file=sys.stderr)
        return 1
    best = f", best {result.best_checkpoint} ({result.best_name} {result.best_metric:.4f})" if result.best_checkpoint else ""
    print(f"done: {result.step} steps, training loss {result.final_loss:.4f} (mean of the last log interval); last {result.last_checkpoint}{best}")
    return 0


if __name__ == "__main__":
    run_cli(main)
