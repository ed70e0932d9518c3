"""A BERT-base-shaped text model in a local folder, made offline: the paper's text model at its real size, for speed only.

    python bench/bert_base_folder.py bert_base_random       # writes the folder (about 440 MB)
    etp_pretrain --data prep --text_model bert_base_random ...

BioClinicalBERT (the paper's text model) is a BERT-base: 12 layers, hidden size 768, 110M parameters. The Hugging Face
hub is not reachable here, so this writes `BertConfig()`'s defaults (which are BERT-base's) with random weights through
`save_pretrained`, and the real WordPiece vocabulary of the packaged all-MiniLM-L6-v2 (bert-base-uncased's 30,522 tokens,
the same size as BertConfig's vocabulary). It runs through `--text_model PATH` exactly as a downloaded model would.

Random weights measure speed and memory only: embeddings from this folder carry no meaning, so never read accuracy from
a run that used it.
"""
import argparse, json, shutil
from pathlib import Path

TOKENIZER_FILES = ('vocab.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')


def make_bert_base_folder(folder, seed: int = 0, **config) -> Path:
    "Write a randomly initialised BERT (BertConfig defaults, i.e. BERT-base, unless `config` overrides) with a real vocabulary to `folder`."
    import torch
    from transformers import BertConfig, BertModel
    from etp_nbdev.text import resolve_model
    folder = Path(folder)
    vocab_from, _ = resolve_model(None)
    cfg = BertConfig(**config)
    n_vocab = sum(1 for _ in open(Path(vocab_from) / 'vocab.txt', encoding='utf-8'))
    if n_vocab != cfg.vocab_size: raise ValueError(f"the packaged vocabulary has {n_vocab} tokens, the config {cfg.vocab_size}")
    torch.manual_seed(seed)
    model = BertModel(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for f in TOKENIZER_FILES:
        if (Path(vocab_from) / f).exists(): shutil.copy(Path(vocab_from) / f, folder / f)
    (folder / 'README.md').write_text("A BERT-base-shaped model with RANDOM weights (bench/bert_base_folder.py): for speed and memory "
                                      "measurements only; its embeddings mean nothing.\n")
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('folder', help='folder to write (created)')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    f = make_bert_base_folder(a.folder, a.seed)
    cfg = json.loads((f / 'config.json').read_text())
    size = sum(p.stat().st_size for p in f.iterdir()) / 1e6
    print(f"wrote {f}: BERT with {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, vocabulary {cfg['vocab_size']}, "
          f"{size:.0f} MB (random weights: speed and memory only)")


if __name__ == '__main__':
    main()
