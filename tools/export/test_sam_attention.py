"""The fused CP-SAM attention (sam_attention.py) against segment_anything's module.

Runs with Cellpose 4's venv (segment_anything). Relative-position tables are random:
SAM zero-initialises them, so an untrained or seeded CP-SAM would not exercise them.
"""
import os
import sys
import unittest

import torch
from segment_anything.modeling.image_encoder import Attention, Block

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sam_attention import FusedRelPosAttention, fuse  # noqa: E402


def sam_attention(dim, heads, table, seed):
    """SAM's attention with random relative-position tables; table is one side or (rows, cols)."""
    torch.manual_seed(seed)
    size = table if isinstance(table, tuple) else (table, table)
    attn = Attention(dim, num_heads=heads, qkv_bias=True, use_rel_pos=True, input_size=size)
    with torch.no_grad():
        attn.rel_pos_h.normal_(0, 0.5)
        attn.rel_pos_w.normal_(0, 0.5)
    return attn.eval()


class FusedAttention(unittest.TestCase):
    def check(self, grid, table, batch, dtype=torch.float32, tol=2e-5):
        attn = sam_attention(dim=128, heads=4, table=table, seed=grid[0] + grid[1])
        fused = FusedRelPosAttention(attn, grid).eval()
        x = torch.randn(batch, *grid, 128, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = attn.to(dtype)(x.to(dtype)).float()
            got = fused.to(dtype)(x.to(dtype)).float()
        self.assertEqual(got.shape, want.shape)
        diff = (got - want).abs().max().item()
        self.assertLessEqual(diff, tol * want.abs().max().item(), f"grid {grid}, table {table}, {dtype}")
        return diff

    def test_cpsam_grid(self):  # 256-pixel tiles of 8-pixel patches; the table resized as SAM does
        self.check((32, 32), table=64, batch=2)

    def test_table_that_fits(self):
        self.check((16, 16), table=16, batch=1)

    def test_non_square_grid(self):
        self.check((8, 12), table=(8, 12), batch=2)

    def test_bfloat16(self):
        self.check((32, 32), table=64, batch=1, dtype=torch.bfloat16, tol=3e-2)

    def test_the_bias_matters(self):
        # the same module without its relative positions must differ: the check above can fail
        attn = sam_attention(dim=128, heads=4, table=16, seed=5)
        fused = FusedRelPosAttention(attn, (16, 16)).eval()
        fused.rel_rows.zero_()
        x = torch.randn(1, 16, 16, 128)
        with torch.no_grad():
            self.assertGreater((fused(x) - attn(x)).abs().max().item(), 1e-3)

    def test_fuse_swaps_global_blocks_only(self):
        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.pos_embed = torch.nn.Parameter(torch.zeros(1, 8, 8, 64))
                self.blocks = torch.nn.ModuleList([
                    Block(64, 2, use_rel_pos=True, window_size=0, input_size=(8, 8)),
                    Block(64, 2, use_rel_pos=True, window_size=4, input_size=(4, 4)),
                    Block(64, 2, use_rel_pos=False, window_size=0, input_size=(8, 8))])

        encoder = Encoder()
        self.assertEqual(fuse(encoder), 1)
        self.assertIsInstance(encoder.blocks[0].attn, FusedRelPosAttention)
        self.assertNotIsInstance(encoder.blocks[1].attn, FusedRelPosAttention)

    def test_fuse_leaves_an_unknown_encoder_as_it_was(self):
        # a later block without relative-position tables: nothing is swapped, not even the first
        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.pos_embed = torch.nn.Parameter(torch.zeros(1, 8, 8, 64))
                self.blocks = torch.nn.ModuleList([Block(64, 2, use_rel_pos=True, window_size=0, input_size=(8, 8)),
                                                   Block(64, 2, use_rel_pos=True, window_size=0, input_size=(8, 8))])
                del self.blocks[1].attn.rel_pos_h

        encoder = Encoder()
        with self.assertRaises(AttributeError):
            fuse(encoder)
        self.assertFalse(any(isinstance(b.attn, FusedRelPosAttention) for b in encoder.blocks))


if __name__ == "__main__":
    torch.set_num_threads(2)
    unittest.main()
