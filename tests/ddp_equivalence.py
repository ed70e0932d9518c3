"""Run under `torchrun --nproc_per_node=2` (gloo, CPU): one DDP training step of the real pretraining methods (`etp_nbdev.methods`) on a
global batch split over the ranks, against a single-process computation of the same global batch.

BatchNorm normalises each process's shard with that shard's statistics (as in any DDP ResNet without
SyncBatchNorm, which needs GPUs), so the single-process reference encodes the shards separately with the same
module and then applies the loss to the whole global batch with no gathering. Rank 0 writes a JSON report to argv[1].
"""
import json, sys
import torch
import torch.distributed as dist
import torch.nn as nn
from etp_nbdev.augment import TwoViews
from etp_nbdev.losses import clip_loss, nt_xent_loss
from etp_nbdev.model import ETPConfig, ETPModel
from etp_nbdev.byol import BYOL
from etp_nbdev.clocs import CLOCS, clocs_loss, clocs_views
from etp_nbdev.methods import ETP, SimCLR
from etp_nbdev.pretrain import setup_runtime

GLOBAL, T, TEXT_DIM = 8, 256, 24


def make(mode):
    torch.manual_seed(0)
    conf = ETPConfig(text_dim=TEXT_DIM if mode == 'etp' else None, proj_dim=32, fs=100)
    return ETPModel(conf)


def flat_grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def main(out):
    rt = setup_runtime('cpu')
    assert rt.world == 2, "run me with torchrun --nproc_per_node=2"
    g = torch.Generator().manual_seed(1)
    ecg = torch.randn(GLOBAL, 12, T, generator=g)
    feats = torch.randn(5, TEXT_DIM, generator=g)
    rid = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])  # repeated reports, so the 'mask' mode has work to do
    patients = torch.tensor([0, 1, 2, 3, 0, 4, 1, 5])  # records 0/4 and 1/6 share a patient across the two ranks (CLOCS)
    per = GLOBAL // rt.world
    mine = slice(rt.rank * per, (rt.rank + 1) * per)
    report = {}
    for mode, dup in (('etp', 'none'), ('etp', 'mask'), ('simclr', 'none'), ('byol', 'none'), ('clocs', 'none')):
        # --- DDP: each rank its shard, the loss gathers the others' embeddings with gradient
        model = make(mode)
        task = (ETP(model, feats, dup) if mode == 'etp' else SimCLR(model, TwoViews(fs=100)) if mode == 'simclr' else
                BYOL(model, TwoViews(fs=100), hidden=16) if mode == 'byol' else CLOCS(model))
        ddp = nn.parallel.DistributedDataParallel(task)
        gen = torch.Generator().manual_seed(7 + rt.rank)  # the views of each shard: reproduced below
        loss = ddp(ecg[mine], rid[mine], gen, **({'group': patients[mine]} if mode == 'clocs' else {}))
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss); mean_loss /= rt.world
        grads = flat_grads(task)
        others = [torch.empty_like(grads) for _ in range(rt.world)]
        dist.all_gather(others, grads)
        if rt.rank == 0:
            # --- one process, the same global batch
            ref = make(mode)
            tau = ref.temperature()
            ref_task = BYOL(ref, TwoViews(fs=100), hidden=16) if mode == 'byol' else ref
            if mode == 'clocs':  # BatchNorm per shard, then the loss over the whole global batch
                za, zb = zip(*[ref.encode_ecg(torch.cat(clocs_views(ecg[s * per:(s + 1) * per]))).chunk(2) for s in range(rt.world)])
                ref_loss = clocs_loss(torch.cat(za), torch.cat(zb), patients, tau, gather=False)
            elif mode == 'byol':  # no negatives: the global loss is the mean of the shards' losses (BatchNorm per shard)
                ref_loss = sum(ref_task(ecg[s * per:(s + 1) * per], None, torch.Generator().manual_seed(7 + s)) for s in range(rt.world)) / rt.world
            elif mode == 'etp':
                e = torch.cat([ref.encode_ecg(ecg[s * per:(s + 1) * per]) for s in range(rt.world)])
                t = ref.encode_text(feats[rid])
                ref_loss = clip_loss(e, t, tau, rid, dup, gather=False)
            else:
                views = TwoViews(fs=100)
                z1, z2 = [], []
                for s in range(rt.world):
                    v1, v2 = views(ecg[s * per:(s + 1) * per], torch.Generator().manual_seed(7 + s))
                    a, b = ref.encode_ecg(torch.cat([v1, v2])).chunk(2)
                    z1.append(a); z2.append(b)
                ref_loss = nt_xent_loss(torch.cat(z1), torch.cat(z2), tau, gather=False)
            ref_loss.backward()
            ref_grads = flat_grads(ref_task)
            report[f"{mode}/{dup}"] = dict(
                ddp_loss=float(mean_loss), ref_loss=float(ref_loss),
                max_grad_diff=float((grads - ref_grads).abs().max()), grad_scale=float(ref_grads.abs().max()),
                ranks_agree=bool(all(torch.equal(o, others[0]) for o in others)),
                local_only_loss=float(clip_loss(*model(ecg[mine], feats[rid[mine]]), tau, gather=False)) if mode == 'etp' else None)
        dist.barrier()
    if rt.rank == 0:
        with open(out, 'w') as f: json.dump(report, f, indent=1)
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
