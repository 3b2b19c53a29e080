//! Tests: model.

mod unet {
    //! The U-Net velocity field (model.md "The U-Net velocity field"; issue 3
    //! section 1).

    use primeflow::model::unet::{AttentionBlock, ResBlock};
    use primeflow::model::{UNetConfig, UNetVelocity, VelocityField};
    use tch::nn::VarStore;
    use tch::{Device, Kind, Tensor};

    /// torch's global RNG is shared by all test threads: every test here that
    /// draws from it (building a net draws its initial weights) holds the
    /// library's own generator guard, so neither these tests nor the seeded
    /// library calls of other tests in this binary see a disturbed stream.
    fn lock() -> primeflow::device::RngGuard {
        primeflow::device::rng_guard(None)
    }

    fn n_params(vs: &VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    fn cfg(name: &str) -> UNetConfig {
        UNetConfig::preset(name).expect("preset")
    }

    /// Replaces every weight by `N(0, 0.2^2)` noise (seeded), so that the
    /// zero-initialised heads no longer hide the rest of the network.
    fn randomise(vs: &VarStore, seed: i64) {
        tch::manual_seed(seed);
        tch::no_grad(|| {
            for mut v in vs.trainable_variables() {
                let noise = Tensor::randn(v.size(), (Kind::Float, Device::Cpu)) * 0.2;
                v.copy_(&noise);
            }
        });
    }

    /// Inputs `x_t [b, m]`, `t [b]`, `cond [b, nc]` from a fixed seed.
    fn inputs(b: i64, m: i64, nc: i64) -> (Tensor, Tensor, Tensor) {
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(11);
        let x = Tensor::randn([b, m], opts);
        let t = Tensor::rand([b], opts);
        let c = Tensor::rand([b, nc], opts).ge(0.7).to_kind(Kind::Float);
        (x, t, c)
    }

    fn build(cfg: &UNetConfig, m: usize, nc: usize) -> (VarStore, UNetVelocity) {
        let vs = VarStore::new(Device::Cpu);
        let net = UNetVelocity::new(&vs.root(), cfg, m, nc).expect("build U-Net");
        (vs, net)
    }

    // ---- parameter counts (model.md "Reference sizes for tests") ----

    #[test]
    fn resblock_256_params() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        ResBlock::new(&(vs.root() / "r"), 256, 256, 1024, &cfg("srivatsan20")).unwrap();
        assert_eq!(n_params(&vs), 919_552);
    }

    #[test]
    fn attention_1024_params() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        AttentionBlock::new(&(vs.root() / "a"), 1024, 8, 32).unwrap();
        assert_eq!(n_params(&vs), 4_200_448);
    }

    #[test]
    fn resblock_2048_to_1024_params() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        ResBlock::new(&(vs.root() / "r"), 2048, 1024, 1024, &cfg("srivatsan20")).unwrap();
        assert_eq!(n_params(&vs), 13_642_752);
    }

    /// The full Srivatsan20 U-Net at m = 2000 genes with n_c = 200 condition
    /// inputs (model.md: "about 210.7M"). 210,725,377 is also what an
    /// independent count by formula gives (value MLP 2 x 65,792, gene
    /// embedding 512,000, time MLP 1,312,768, condition MLP 1,255,424, U-Net
    /// body 207,513,601). Allocates ~840 MB; no forward pass.
    #[test]
    fn srivatsan20_params() {
        let _rng = lock();
        let (vs, _net) = build(&cfg("srivatsan20"), 2000, 200);
        assert_eq!(n_params(&vs), 210_725_377);
    }

    // ---- FLOPs ----

    #[test]
    fn srivatsan20_flops_match_model_md() {
        let _rng = primeflow::device::rng_guard(None);
        let f = UNetVelocity::flops_per_cell(&cfg("srivatsan20"), 2000, 200);
        let rel = (f - 104.5e9).abs() / 104.5e9;
        assert!(rel < 0.02, "flops {f:e} vs 104.5e9 (rel {rel})");
        // Conditions barely matter: n_c enters one linear layer.
        let f1 = UNetVelocity::flops_per_cell(&cfg("srivatsan20"), 2000, 1);
        assert!((f - f1) / f < 1e-3);
    }

    // ---- names ----

    #[test]
    fn state_dict_names_follow_guided_diffusion() {
        let _rng = lock();
        let c = UNetConfig {
            channel_mult: vec![1, 2, 2],
            attention_resolutions: vec![4],
            ..cfg("tiny")
        };
        let (vs, _net) = build(&c, 40, 5);
        let names = vs.variables();
        for n in [
            "time_embed.0.weight",
            "time_embed.2.weight",
            "cond_embed.0.weight",
            "cond_embed.2.bias",
            "value_mlp.0.weight",
            "value_mlp.2.weight",
            "gene_embedding.weight",
            "input_blocks.0.0.weight",
            "input_blocks.1.0.in_layers.0.weight",
            "input_blocks.1.0.in_layers.2.weight",
            "input_blocks.1.0.emb_layers.1.weight",
            "input_blocks.1.0.out_layers.0.weight",
            "input_blocks.1.0.out_layers.3.weight",
            "input_blocks.2.0.op.weight",
            "input_blocks.3.0.skip_connection.weight",
            "input_blocks.5.0.in_layers.0.bias",
            "input_blocks.5.1.qkv.weight",
            "input_blocks.5.1.proj_out.weight",
            "middle_block.0.in_layers.0.weight",
            "middle_block.1.norm.weight",
            "middle_block.1.qkv.weight",
            "middle_block.1.proj_out.weight",
            "middle_block.2.out_layers.3.weight",
            "output_blocks.0.0.skip_connection.weight",
            "output_blocks.0.1.qkv.weight",
            "output_blocks.1.2.conv.weight",
            "output_blocks.3.1.conv.weight",
            "out.0.weight",
            "out.2.weight",
        ] {
            assert!(names.contains_key(n), "missing {n}; have {:?}", {
                let mut k: Vec<_> = names.keys().collect();
                k.sort();
                k
            });
        }
        assert_eq!(names["gene_embedding.weight"].size(), [40, 32]);
        assert_eq!(names["out.2.weight"].size(), [1, 32, 3]);
        // Down: conv, 3 levels x 1 ResBlock, 2 Downsamples = input_blocks.0-5;
        // up: 3 levels x (1 + 1) ResBlocks = output_blocks.0-5.
        assert!(names
            .keys()
            .all(|k| !k.starts_with("output_blocks.6") && !k.starts_with("input_blocks.6")));
        // No attention outside ds = 4 (input_blocks.5, output_blocks.0-1, middle).
        let attn: Vec<_> = names.keys().filter(|k| k.ends_with("qkv.weight")).collect();
        assert_eq!(attn.len(), 4, "{attn:?}");
    }

    // ---- forward ----

    #[test]
    fn odd_gene_counts_pad_and_crop() {
        let _rng = lock();
        let four_levels = UNetConfig {
            channel_mult: vec![1, 1, 2, 2],
            attention_resolutions: vec![8],
            ..cfg("tiny")
        };
        for (c, m) in [
            (cfg("tiny"), 37),
            (cfg("tiny"), 501),
            (four_levels.clone(), 37),
            (four_levels, 501),
        ] {
            let (vs, net) = build(&c, m, 6);
            randomise(&vs, 3);
            let (x, t, cond) = inputs(3, m as i64, 6);
            let v = net.velocity(&x, &t, &cond, false).unwrap();
            assert_eq!(v.size(), [3, m as i64], "config {:?}", c.channel_mult);
            assert_eq!(v.kind(), Kind::Float);
            assert!(net.padded_len() % c.pad_multiple() == 0 && net.padded_len() >= m);
            assert!(bool::try_from(v.isfinite().all()).unwrap());
        }
    }

    #[test]
    fn untrained_output_is_exactly_zero() {
        let _rng = lock();
        let (_vs, net) = build(&cfg("tiny"), 37, 4);
        let (x, t, c) = inputs(5, 37, 4);
        let v = net.velocity(&x, &t, &c, true).unwrap();
        assert_eq!(v.size(), [5, 37]);
        assert_eq!(f64::try_from(v.abs().max()).unwrap(), 0.0);
    }

    #[test]
    fn same_seed_same_weights_and_outputs() {
        // Bit-exact reproducibility needs the process-wide RNG to itself.
        crate::train::isolated("model::unet::same_seed_same_weights_and_outputs", || {
            let _rng = lock();
            let make = |seed: i64| {
                tch::manual_seed(seed);
                build(&cfg("tiny"), 24, 3)
            };
            let (vs1, net1) = make(5);
            let (vs2, net2) = make(5);
            let (vs3, _net3) = make(6);
            let (v1, v2, v3) = (vs1.variables(), vs2.variables(), vs3.variables());
            assert_eq!(v1.len(), v2.len());
            for (name, w) in &v1 {
                assert!(w.equal(&v2[name]), "{name} differs under the same seed");
            }
            assert!(!v1["input_blocks.0.0.weight"].equal(&v3["input_blocks.0.0.weight"]));
            // Nonzero everywhere (seeded), then the outputs must agree exactly.
            randomise(&vs1, 9);
            randomise(&vs2, 9);
            let (x, t, c) = inputs(4, 24, 3);
            let o1 = net1.velocity(&x, &t, &c, false).unwrap();
            let o2 = net2.velocity(&x, &t, &c, false).unwrap();
            assert!(o1.equal(&o2));
            assert!(f64::try_from(o1.abs().max()).unwrap() > 0.0);
        });
    }

    #[test]
    fn dropout_only_in_training() {
        let _rng = lock();
        let c = UNetConfig {
            dropout: 0.5,
            ..cfg("tiny")
        };
        let (vs, net) = build(&c, 20, 3);
        randomise(&vs, 1);
        let (x, t, cond) = inputs(4, 20, 3);
        let e1 = net.velocity(&x, &t, &cond, false).unwrap();
        let e2 = net.velocity(&x, &t, &cond, false).unwrap();
        assert!(e1.equal(&e2), "eval must be deterministic");
        let tr = net.velocity(&x, &t, &cond, true).unwrap();
        let diff = f64::try_from((&tr - &e1).abs().max()).unwrap();
        assert!(diff > 1e-3, "train output equals eval output (diff {diff})");
        // Without dropout, train and eval agree.
        let (vs0, net0) = build(&cfg("tiny"), 20, 3);
        randomise(&vs0, 1);
        let a = net0.velocity(&x, &t, &cond, true).unwrap();
        let b = net0.velocity(&x, &t, &cond, false).unwrap();
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
    }

    /// Gradients reach every parameter once the heads are nonzero, and one
    /// SGD step on the zero-initialised net moves its output off zero.
    #[test]
    fn gradients_flow() {
        let _rng = lock();
        let (vs, net) = build(&cfg("tiny"), 16, 2);
        let (x, t, c) = inputs(4, 16, 2);
        let loss = (net.velocity(&x, &t, &c, true).unwrap() - &x)
            .square()
            .mean(Kind::Float);
        loss.backward();
        let grads = vs.variables();
        let g = grads["out.2.weight"].grad();
        assert!(f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0);
        randomise(&vs, 2);
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let loss = net
            .velocity(&x, &t, &c, true)
            .unwrap()
            .square()
            .mean(Kind::Float);
        loss.backward();
        for (name, v) in vs.variables() {
            let g = v.grad();
            assert!(g.defined(), "{name} got no gradient");
            assert!(
                f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0,
                "{name} has zero gradient"
            );
        }
    }

    #[test]
    fn wrong_shapes_name_both() {
        let _rng = lock();
        let (_vs, net) = build(&cfg("tiny"), 10, 3);
        let opts = (Kind::Float, Device::Cpu);
        let (x, t, c) = (
            Tensor::zeros([2, 10], opts),
            Tensor::zeros([2], opts),
            Tensor::zeros([2, 3], opts),
        );
        let e = net
            .velocity(&Tensor::zeros([2, 11], opts), &t, &c, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 11]") && e.contains("10"), "{e}");
        let e = net
            .velocity(&x, &Tensor::zeros([3], opts), &c, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[3]") && e.contains("[2]"), "{e}");
        let e = net
            .velocity(&x, &t, &Tensor::zeros([2, 4], opts), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 4]") && e.contains("[2, 3]"), "{e}");
        let e = net
            .velocity(&Tensor::zeros([10], opts), &t, &c, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x_t") && e.contains("[10]"), "{e}");
        assert!(net.velocity(&x, &t, &c, false).is_ok());
        let vs = VarStore::new(Device::Cpu);
        assert!(UNetVelocity::new(&vs.root(), &cfg("tiny"), 0, 3).is_err());
        assert!(UNetVelocity::new(&vs.root(), &cfg("tiny"), 10, 0).is_err());
    }

    // ---- config ----

    #[test]
    fn presets_validate_and_unknown_lists_known() {
        let _rng = primeflow::device::rng_guard(None);
        for name in UNetConfig::PRESETS {
            cfg(name).validate().unwrap();
        }
        assert_eq!(UNetConfig::default(), cfg("small"));
        let s = cfg("srivatsan20");
        assert_eq!(
            (s.hidden_dim, s.channel_mult.clone(), s.num_res_blocks),
            (256, vec![1, 2, 2, 4, 4], 2)
        );
        assert_eq!(
            (s.attention_resolutions.clone(), s.num_heads, s.dropout),
            (vec![16], 8, 0.1)
        );
        assert_eq!(cfg("norman19").channel_mult, vec![1, 1, 2, 2, 4]);
        let e = UNetConfig::preset("huge").unwrap_err().to_string();
        assert!(
            e.contains("huge") && e.contains("srivatsan20") && e.contains("tiny"),
            "{e}"
        );
    }

    #[test]
    fn json_round_trip_and_unknown_fields() {
        let _rng = primeflow::device::rng_guard(None);
        let c = cfg("norman19");
        let s = serde_json::to_string(&c).unwrap();
        let back: UNetConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        let partial: UNetConfig = serde_json::from_str(r#"{"hidden_dim": 128}"#).unwrap();
        assert_eq!(
            partial,
            UNetConfig {
                hidden_dim: 128,
                ..UNetConfig::default()
            }
        );
        let e = serde_json::from_str::<UNetConfig>(r#"{"hidden_dims": 128}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_dims"), "{e}");
        // Training fields do not belong here.
        assert!(serde_json::from_str::<UNetConfig>(r#"{"lr": 0.001}"#).is_err());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let _rng = lock();
        let base = cfg("tiny");
        let cases: Vec<(UNetConfig, &str, &str)> = vec![
            (
                UNetConfig {
                    hidden_dim: 33,
                    ..base.clone()
                },
                "hidden_dim",
                "33",
            ),
            (
                UNetConfig {
                    channel_mult: vec![],
                    ..base.clone()
                },
                "channel_mult",
                "[]",
            ),
            (
                UNetConfig {
                    channel_mult: vec![1, 0],
                    ..base.clone()
                },
                "channel_mult",
                "0",
            ),
            (
                UNetConfig {
                    num_res_blocks: 0,
                    ..base.clone()
                },
                "num_res_blocks",
                "0",
            ),
            (
                UNetConfig {
                    norm_groups: 5,
                    ..base.clone()
                },
                "norm_groups",
                "5",
            ),
            (
                UNetConfig {
                    num_heads: 3,
                    ..base.clone()
                },
                "num_heads",
                "3",
            ),
            (
                UNetConfig {
                    attention_resolutions: vec![16],
                    ..base.clone()
                },
                "attention_resolutions",
                "16",
            ),
            (
                UNetConfig {
                    dropout: 1.0,
                    ..base.clone()
                },
                "dropout",
                "1",
            ),
            (
                UNetConfig {
                    value_scale: -1.0,
                    ..base.clone()
                },
                "value_scale",
                "-1",
            ),
            (
                UNetConfig {
                    n_layers_time: 0,
                    ..base.clone()
                },
                "n_layers_time",
                "0",
            ),
            (
                UNetConfig {
                    n_layers_conditions: 0,
                    ..base.clone()
                },
                "n_layers_conditions",
                "0",
            ),
        ];
        for (c, field, value) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains(field) && e.contains(value),
                "expected {field}={value} in: {e}"
            );
            let vs = VarStore::new(Device::Cpu);
            assert!(UNetVelocity::new(&vs.root(), &c, 10, 2).is_err(), "{field}");
        }
        // No value MLP is allowed (bare sinusoid + gene embedding).
        UNetConfig {
            n_layers_gene_expression: 0,
            ..base
        }
        .validate()
        .unwrap();
    }

    // ---- independent PyTorch reference ----

    /// A from-scratch functional PyTorch version of model.md's U-Net (it
    /// re-derives the block layout from the config, uses a head-major
    /// `[B, H, 3, c, T]` view for the legacy qkv order, and checks that every
    /// stored weight is used). Reads weights, inputs and the Rust output from
    /// an .npz and the config from JSON; prints a JSON summary.
    const REFERENCE_PY: &str = r#"
import json, math, sys
import numpy as np, torch, torch.nn.functional as F
def run(npz, cfg_path):
    z = np.load(npz)
    W = {k: torch.from_numpy(z[k]) for k in z.files if not k.startswith('__')}
    x, t, c, rust = (torch.from_numpy(z[k]) for k in ('__x', '__t', '__c', '__out'))
    cfg = json.load(open(cfg_path))
    d, mult, nrb = cfg['hidden_dim'], cfg['channel_mult'], cfg['num_res_blocks']
    G, H, L = cfg['norm_groups'], cfg['num_heads'], len(cfg['channel_mult'])
    used = set()
    def P(n):
        used.add(n)
        return W[n]
    def sinus(v, dim, s):
        half = dim // 2
        f = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / half))
        a = (v * s)[..., None] * f
        return torch.cat([torch.cos(a), torch.sin(a)], -1)
    def lin(v, n): return F.linear(v, P(n + '.weight'), P(n + '.bias'))
    def conv(v, n, stride=1):
        w = P(n + '.weight')
        return F.conv1d(v, w, P(n + '.bias'), stride=stride, padding=w.shape[-1] // 2)
    def gn(v, n): return F.group_norm(v.float(), G, P(n + '.weight'), P(n + '.bias'), 1e-5)
    def mlp(v, n, k):
        for i in range(k):
            if i: v = F.silu(v)
            v = lin(v, f'{n}.{2 * i}')
        return v
    def res(v, emb, n):
        h = conv(F.silu(gn(v, n + '.in_layers.0')), n + '.in_layers.2')
        e = lin(F.silu(emb), n + '.emb_layers.1')[:, :, None]
        if cfg['use_scale_shift_norm']:
            cout = h.shape[1]
            h = gn(h, n + '.out_layers.0') * (1 + e[:, :cout]) + e[:, cout:]
        else:
            h = gn(h + e, n + '.out_layers.0')
        h = conv(F.silu(h), n + '.out_layers.3')
        skip = conv(v, n + '.skip_connection') if n + '.skip_connection.weight' in W else v
        return skip + h
    def attn(v, n):
        B, C, T = v.shape
        ch = C // H
        q, k, w_v = conv(gn(v, n + '.norm'), n + '.qkv').view(B, H, 3, ch, T).unbind(2)
        w = torch.softmax(torch.einsum('bhct,bhcs->bhts', q, k) / math.sqrt(ch), -1)
        a = torch.einsum('bhts,bhcs->bhct', w, w_v).reshape(B, C, T)
        return v + conv(a, n + '.proj_out')
    def down(v, n): return conv(v, n + '.op', 2) if cfg['conv_resample'] else F.avg_pool1d(v, 2)
    def up(v, n):
        v = F.interpolate(v, scale_factor=2, mode='nearest')
        return conv(v, n + '.conv') if cfg['conv_resample'] else v
    with torch.no_grad():
        m = x.shape[1]
        h = mlp(sinus(x, d, cfg['value_scale']), 'value_mlp', cfg['n_layers_gene_expression'])
        h = (h + P('gene_embedding.weight')).transpose(1, 2)
        M = -(-m // 2 ** (L - 1)) * 2 ** (L - 1)
        h = F.pad(h, (0, M - m))
        emb = mlp(sinus(t, d, 1000.0), 'time_embed', cfg['n_layers_time']) + mlp(c, 'cond_embed', cfg['n_layers_conditions'])
        h = conv(h, 'input_blocks.0.0')
        hs, i, ds = [h], 1, 1
        for lvl in range(L):
            for _ in range(nrb):
                h = res(h, emb, f'input_blocks.{i}.0')
                if ds in cfg['attention_resolutions']: h = attn(h, f'input_blocks.{i}.1')
                hs.append(h); i += 1
            if lvl != L - 1:
                h = down(h, f'input_blocks.{i}.0'); hs.append(h); i += 1; ds *= 2
        h = res(attn(res(h, emb, 'middle_block.0'), 'middle_block.1'), emb, 'middle_block.2')
        o = 0
        for lvl in reversed(range(L)):
            for j in range(nrb + 1):
                h = res(torch.cat([h, hs.pop()], 1), emb, f'output_blocks.{o}.0'); k = 1
                if ds in cfg['attention_resolutions']: h = attn(h, f'output_blocks.{o}.{k}'); k += 1
                if lvl and j == nrb: h = up(h, f'output_blocks.{o}.{k}'); ds //= 2
                o += 1
        out = conv(F.silu(gn(h, 'out.0')), 'out.2')[:, 0, :m]
    print(json.dumps({'max_abs_diff': float((out - rust).abs().max()), 'max_abs': float(out.abs().max()),
                      'shape': list(out.shape), 'unused': sorted(set(W) - used)}))

for npz, cfg_path in zip(sys.argv[1::2], sys.argv[2::2]):
    run(npz, cfg_path)
"#;

    #[test]
    fn matches_independent_pytorch_reference() {
        let _rng = primeflow::device::rng_guard(None);
        if !crate::common::python_has("torch") {
            println!("skipped: the venv's Python has no torch");
            return;
        }
        let _rng = lock();
        let a = UNetConfig {
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 2,
            attention_resolutions: vec![2],
            ..cfg("tiny")
        };
        let b = UNetConfig {
            channel_mult: vec![1, 2],
            attention_resolutions: vec![],
            use_scale_shift_norm: false,
            conv_resample: false,
            n_layers_gene_expression: 1,
            n_layers_time: 3,
            value_scale: 10.0,
            ..cfg("tiny")
        };
        let dir = crate::common::tmpdir("unet_reference");
        let mut args = Vec::new();
        for (tag, c) in [("a", &a), ("b", &b)] {
            let (vs, net) = build(c, 37, 5);
            randomise(&vs, 21);
            let (x, t, cond) = inputs(3, 37, 5);
            let out = net.velocity(&x, &t, &cond, false).unwrap();
            let mut named: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach()))
                .collect();
            for (k, v) in [("__x", &x), ("__t", &t), ("__c", &cond), ("__out", &out)] {
                named.push((k.to_string(), v.shallow_clone()));
            }
            let npz = dir.join(format!("unet_{tag}.npz"));
            Tensor::write_npz(&named, &npz).unwrap();
            let cfg_json = dir.join(format!("config_{tag}.json"));
            std::fs::write(&cfg_json, serde_json::to_string(c).unwrap()).unwrap();
            args.extend([npz, cfg_json]);
        }
        let script = dir.join("reference.py");
        std::fs::write(&script, REFERENCE_PY).unwrap();
        let o = std::process::Command::new(crate::common::python())
            .arg(&script)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        for (tag, line) in ["a", "b"].iter().zip(lines) {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let (diff, scale) = (
                r["max_abs_diff"].as_f64().unwrap(),
                r["max_abs"].as_f64().unwrap(),
            );
            println!("config {tag}: {r}");
            assert_eq!(r["shape"], serde_json::json!([3, 37]));
            assert_eq!(
                r["unused"],
                serde_json::json!([]),
                "weights the reference did not use"
            );
            assert!(
                scale > 1e-2,
                "reference output is ~0 ({scale}); the check would be vacuous"
            );
            assert!(
                diff <= 1e-4 * scale.max(1.0),
                "config {tag}: Rust vs PyTorch max diff {diff} (scale {scale})"
            );
        }
    }

    // ---- GPU ----

    /// On CUDA: the forward under bf16 autocast returns f32 `[B, m]` close to
    /// the fp32 forward (GroupNorm and softmax run in fp32), backward works,
    /// and CPU inputs to a CUDA model are refused with both devices named.
    #[test]
    fn bf16_autocast_on_gpu() {
        let _rng = primeflow::device::rng_guard(None);
        if !tch::Cuda::is_available() {
            println!("skipped: no GPU");
            return;
        }
        let _rng = lock();
        let dev = Device::Cuda(0);
        let c = UNetConfig {
            channel_mult: vec![1, 2, 2],
            attention_resolutions: vec![4],
            ..cfg("tiny")
        };
        let vs = VarStore::new(dev);
        let net = UNetVelocity::new(&vs.root(), &c, 101, 6).unwrap();
        randomise(&vs, 4);
        let (x, t, cond) = inputs(8, 101, 6);
        let e = net.velocity(&x, &t, &cond, false).unwrap_err().to_string();
        assert!(e.contains("Cpu") && e.contains("Cuda"), "{e}");
        let (x, t, cond) = (x.to_device(dev), t.to_device(dev), cond.to_device(dev));
        let full = net.velocity(&x, &t, &cond, false).unwrap();
        let half = tch::autocast(true, || net.velocity(&x, &t, &cond, false)).unwrap();
        assert_eq!(half.kind(), Kind::Float);
        assert_eq!(half.size(), [8, 101]);
        let rel = f64::try_from((&half - &full).norm() / full.norm()).unwrap();
        assert!(rel < 0.05, "bf16 vs fp32 relative error {rel}");
        let loss = tch::autocast(true, || net.velocity(&x, &t, &cond, true))
            .unwrap()
            .square()
            .mean(Kind::Float);
        loss.backward();
        for (name, v) in vs.variables() {
            let g = v.grad();
            assert!(
                g.defined() && bool::try_from(g.isfinite().all()).unwrap(),
                "{name}: bad gradient"
            );
        }
    }

    // ---- options beyond the paper (docs/results/recipe.md) ----

    /// `condition_skip` adds exactly `condition_skip.weight [m, n_c]` and
    /// `condition_skip.bias [m]`; both start at zero (the untrained output is
    /// still exactly zero) and draw nothing from the RNG (every other weight
    /// equals the weight without the option, under the same seed). Its FLOPs
    /// are one `n_c -> m` Linear.
    #[test]
    fn condition_skip_adds_a_zero_linear_and_keeps_other_weights() {
        let _rng = lock();
        let (m, nc) = (37usize, 5usize);
        let with = UNetConfig {
            condition_skip: true,
            ..cfg("tiny")
        };
        tch::manual_seed(3);
        let (vs0, _net0) = build(&cfg("tiny"), m, nc);
        tch::manual_seed(3);
        let (vs1, net1) = build(&with, m, nc);
        assert_eq!(n_params(&vs1) - n_params(&vs0), (m * nc + m) as i64);
        let (v0, v1) = (vs0.variables(), vs1.variables());
        assert_eq!(v1.len(), v0.len() + 2);
        assert_eq!(v1["condition_skip.weight"].size(), [m as i64, nc as i64]);
        assert_eq!(v1["condition_skip.bias"].size(), [m as i64]);
        for (name, w) in &v0 {
            assert!(
                w.equal(&v1[name]),
                "{name} changed when condition_skip was added"
            );
        }
        let (x, t, c) = inputs(4, m as i64, nc as i64);
        let v = net1.velocity(&x, &t, &c, true).unwrap();
        assert_eq!(v.size(), [4, m as i64]);
        assert_eq!(f64::try_from(v.abs().max()).unwrap(), 0.0);
        let df = UNetVelocity::flops_per_cell(&with, m, nc)
            - UNetVelocity::flops_per_cell(&cfg("tiny"), m, nc);
        assert_eq!(df, (2 * m * nc) as f64);
        // Off by default, and the paper presets keep it off.
        assert!(!UNetConfig::default().condition_skip);
        for name in ["norman19", "srivatsan20"] {
            assert!(!cfg(name).condition_skip);
        }
    }

    /// With the U-Net's zero-initialised head, the velocity is exactly
    /// `W c + b`: additive over the condition's blocks, so
    /// `v(a + b) = v(a) + v(b) - v(0)`; and the skip gets a gradient.
    #[test]
    fn condition_skip_is_additive_in_the_condition_and_trains() {
        let _rng = lock();
        let (m, nc) = (20usize, 6usize);
        let c = UNetConfig {
            condition_skip: true,
            ..cfg("tiny")
        };
        let (vs, net) = build(&c, m, nc);
        tch::manual_seed(4);
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("condition_skip") {
                    v.copy_(&Tensor::randn(v.size(), (Kind::Float, Device::Cpu)));
                }
            }
        });
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([1, m as i64], opts);
        let t = Tensor::from_slice(&[0.3f32]);
        let onehot = |i: &[usize]| {
            let mut e = vec![0f32; nc];
            for &k in i {
                e[k] = 1.0;
            }
            Tensor::from_slice(&e).reshape([1, nc as i64])
        };
        let v = |e: &Tensor| net.velocity(&x, &t, e, false).unwrap();
        let (va, vb, vab, v0) = (
            v(&onehot(&[1])),
            v(&onehot(&[4])),
            v(&onehot(&[1, 4])),
            v(&onehot(&[])),
        );
        assert!((&vab - (&va + &vb - &v0)).abs().max().double_value(&[]) < 1e-5);
        assert!((&va - &v0).abs().max().double_value(&[]) > 1e-3);
        let loss = (net.velocity(&x, &t, &onehot(&[1, 4]), true).unwrap() - 1.0)
            .square()
            .mean(Kind::Float);
        loss.backward();
        let g = vs.variables()["condition_skip.weight"].grad();
        assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    // ---- timing (run by hand) ----

    /// CPU forward+backward time per batch of 32 cells at m = 500 genes and
    /// n_c = 100, for the tiny and small presets, plus every preset's
    /// parameter count at m = 500 and m = 2000. Run with
    /// `cargo test --release --test suite model::unet::bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_step_times() {
        let _rng = lock();
        for name in UNetConfig::PRESETS {
            for m in [500usize, 2000] {
                let c = cfg(name);
                let (vs, _net) = build(&c, m, 100);
                let gf = UNetVelocity::flops_per_cell(&c, m, 100) / 1e9;
                println!(
                    "{name:12} m={m:5} params {:>12} forward {gf:.3} GFLOP/cell",
                    n_params(&vs)
                );
            }
        }
        for name in ["tiny", "small"] {
            let c = cfg(name);
            let (vs, net) = build(&c, 500, 100);
            let mut opt =
                tch::nn::OptimizerConfig::build(tch::nn::adamw(0.9, 0.999, 0.0), &vs, 5e-5)
                    .unwrap();
            let (x, t, cond) = inputs(32, 500, 100);
            let mut times = Vec::new();
            for _ in 0..6 {
                let start = std::time::Instant::now();
                let loss = (net.velocity(&x, &t, &cond, true).unwrap() - &x)
                    .square()
                    .mean(Kind::Float);
                opt.zero_grad();
                loss.backward();
                opt.step();
                times.push(start.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let gf = 3.0 * 32.0 * UNetVelocity::flops_per_cell(&c, 500, 100) / 1e9;
            println!(
                "{name}: fwd+bwd+AdamW step, batch 32, m=500: median {:.3} s (min {:.3}), {:.1} GFLOP/step, {:.1} GFLOP/s, {} threads",
                times[3], times[0], gf, gf / times[3], tch::get_num_threads()
            );
        }
    }
}
