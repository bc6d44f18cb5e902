"""Forward hooks that record every intermediate of transformers' Phi3ForCausalLM under this
project's tap names (layers/taps.ts), shared by the golden generators of this folder."""

import transformers.models.phi3.modeling_phi3 as M


class Taps:
    def __init__(self, model):
        self.rec, self.handles, self.cur = {}, [], None
        mm = model.model

        def hook(key, use_input=False):
            def h(mod, args, out):
                t = args[0] if use_input else (out[0] if isinstance(out, (tuple, list)) else out)
                self.rec[key] = t.detach()
            return h
        H = self.handles
        H.append(mm.embed_tokens.register_forward_hook(hook("embed")))
        H.append(mm.norm.register_forward_hook(hook("final_norm")))
        H.append(model.lm_head.register_forward_hook(hook("logits")))
        H.append(mm.rotary_emb.register_forward_hook(lambda m, a, o: self.rec.update({"rope.cos": o[0], "rope.sin": o[1]})))
        for i, L in enumerate(mm.layers):
            p = f"layers.{i}."
            H.append(L.input_layernorm.register_forward_hook(hook(p + "input_norm")))
            H.append(L.self_attn.qkv_proj.register_forward_hook(hook(p + "qkv")))
            H.append(L.self_attn.o_proj.register_forward_hook(hook(p + "attn_out", True)))
            H.append(L.self_attn.o_proj.register_forward_hook(hook(p + "o_proj")))
            H.append(L.post_attention_layernorm.register_forward_hook(hook(p + "post_attn_residual", True)))
            H.append(L.post_attention_layernorm.register_forward_hook(hook(p + "post_attn_norm")))
            H.append(L.mlp.gate_up_proj.register_forward_hook(hook(p + "gate_up")))
            H.append(L.mlp.down_proj.register_forward_hook(hook(p + "mlp_act", True)))
            H.append(L.mlp.down_proj.register_forward_hook(hook(p + "mlp_out")))
            H.append(L.register_forward_hook(hook(p + "out")))
            H.append(L.self_attn.register_forward_pre_hook(lambda m, a, i=i: setattr(self, "cur", i)))
        self.orig = M.apply_rotary_pos_emb

        def patched(q, k, cos, sin, *a, **kw):
            qo, ko = self.orig(q, k, cos, sin, *a, **kw)
            self.rec[f"layers.{self.cur}.q_rot"], self.rec[f"layers.{self.cur}.k_rot"] = qo, ko
            return qo, ko
        M.apply_rotary_pos_emb = patched

    def close(self):
        for h in self.handles:
            h.remove()
        M.apply_rotary_pos_emb = self.orig
