"""Cellpose-SAM's attention as one fused scaled_dot_product_attention per block.

Cellpose-SAM runs SAM's ViT-L encoder with global attention in all 24 blocks on a
32x32 token grid. SAM's attention adds decomposed relative positions to the logits:

    softmax(scale * q_i.k_j + q_i.Rh[row(i), row(j)] + q_i.Rw[col(i), col(j)]) v

and computes it as written, so each block writes, re-reads and rewrites a
[heads, 1024, 1024] map per tile (product, bias, softmax): on a CPU that memory
traffic costs more than the attention's arithmetic. The bias is itself a dot
product, so it folds into q and k:

    q'_i = [scale * q_i, q_i.Rh[row(i), :], q_i.Rw[col(i), :]]
    k'_j = [k_j, onehot(row(j)), onehot(col(j))]

and q'_i.k'_j is the whole logit. One F.scaled_dot_product_attention (scale 1) then
runs the attention without the map, in the flash kernels of the CPU and of CUDA.
Those want one head width for q, k and v, so v gets zero columns up to q's width,
dropped after. Exports check the result against SAM's own module (export.py).
"""
import torch
import torch.nn.functional as F


class FusedRelPosAttention(torch.nn.Module):
    """Drop-in for segment_anything's image_encoder.Attention on a fixed token grid."""

    def __init__(self, attn, grid):
        super().__init__()
        from segment_anything.modeling.image_encoder import get_rel_pos

        rows, cols = grid
        self.qkv, self.proj = attn.qkv, attn.proj
        self.heads = attn.num_heads
        self.scale = attn.scale
        with torch.no_grad():
            # Rh[r, s] for query row r and key row s (SAM's table, resized to the grid)
            self.register_buffer("rel_rows", get_rel_pos(rows, rows, attn.rel_pos_h).detach().clone())
            self.register_buffer("rel_cols", get_rel_pos(cols, cols, attn.rel_pos_w).detach().clone())
            onehot_row = torch.eye(rows).repeat_interleave(cols, 0)  # token j -> row(j)
            onehot_col = torch.eye(cols).repeat(rows, 1)  # token j -> col(j)
            self.register_buffer("key_pos", torch.cat([onehot_row, onehot_col], 1))

    def forward(self, x):
        b, rows, cols, _ = x.shape
        n = rows * cols
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        width = q.shape[-1]
        on_grid = q.reshape(b, self.heads, rows, cols, width)
        to_rows = torch.einsum("bnhwc,hkc->bnhwk", on_grid, self.rel_rows).reshape(b, self.heads, n, rows)
        to_cols = torch.einsum("bnhwc,wkc->bnhwk", on_grid, self.rel_cols).reshape(b, self.heads, n, cols)
        q = torch.cat([q * self.scale, to_rows, to_cols], -1)
        k = torch.cat([k, self.key_pos.expand(b, self.heads, n, rows + cols)], -1)
        v = F.pad(v, (0, rows + cols))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)[..., :width]
        return self.proj(out.transpose(1, 2).reshape(b, rows, cols, -1))


def fuse(encoder):
    """Swap the attention of every global, relative-position block; returns how many.

    Every replacement is built before any is put in place, so an encoder of another
    structure (AttributeError) is left as it was."""
    grid = tuple(encoder.pos_embed.shape[1:3])
    swaps = [(block, FusedRelPosAttention(block.attn, grid)) for block in encoder.blocks
             if block.window_size == 0 and getattr(block.attn, "use_rel_pos", False)]
    for block, fused in swaps:
        block.attn = fused
    return len(swaps)
