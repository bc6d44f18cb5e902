;; What bounds the exact kernel (dots.wat) on this machine, measured by the bench (bench/limits.ts):
;;
;;   chains_f64  the float64 SIMD roofline: 12 independent chains c = c * m + d on float64x2, the
;;               multiply and the add the kernel's tiles do (no fused multiply-add in WebAssembly
;;               SIMD). Twelve chains, because a chain waits for its previous step (multiply plus
;;               add latency, about 6 cycles) while a core starts about 2 multiplies and 2 adds a
;;               cycle: 12 in flight keep every unit busy. 48 flops per iteration.
;;   chains_f32  the same on float32x4 (96 flops per iteration): what a float32 kernel could reach.
;;   read        the decode floor: SIMD loads of a buffer, 64 bytes an iteration, as a one-row
;;               product reads its weights (each byte once, in order). The words are summed
;;               (integer adds, modulo 2^32) so the loads cannot be dropped and the caller can
;;               check that every byte was read.
;;
;; The chains return the sum of their lanes so that a test can redo the same arithmetic in
;; JavaScript and compare. The memory is shared: a thread of the bench reads its own part of it.
;; Assembled by `npm run kernels` (wabt) into roofline-wasm.ts; test/roofline.test.ts checks both.
(module
  (import "env" "memory" (memory 0 65536 shared))

  (func (export "chains_f64") (param $iters i32) (param $m f64) (param $d f64) (result f64)
    (local $vm v128) (local $vd v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128) (local $c5 v128)
    (local $c6 v128) (local $c7 v128) (local $c8 v128) (local $c9 v128) (local $c10 v128) (local $c11 v128)
    (local.set $vm (f64x2.splat (local.get $m)))
    (local.set $vd (f64x2.splat (local.get $d)))
    ;; chain i starts at (i, i + 0.5)
    (local.set $c0 (v128.const f64x2 0 0.5))
    (local.set $c1 (v128.const f64x2 1 1.5))
    (local.set $c2 (v128.const f64x2 2 2.5))
    (local.set $c3 (v128.const f64x2 3 3.5))
    (local.set $c4 (v128.const f64x2 4 4.5))
    (local.set $c5 (v128.const f64x2 5 5.5))
    (local.set $c6 (v128.const f64x2 6 6.5))
    (local.set $c7 (v128.const f64x2 7 7.5))
    (local.set $c8 (v128.const f64x2 8 8.5))
    (local.set $c9 (v128.const f64x2 9 9.5))
    (local.set $c10 (v128.const f64x2 10 10.5))
    (local.set $c11 (v128.const f64x2 11 11.5))
    (block $done
      (br_if $done (i32.le_s (local.get $iters) (i32.const 0)))
      (loop $steps
        (local.set $c0 (f64x2.add (f64x2.mul (local.get $c0) (local.get $vm)) (local.get $vd)))
        (local.set $c1 (f64x2.add (f64x2.mul (local.get $c1) (local.get $vm)) (local.get $vd)))
        (local.set $c2 (f64x2.add (f64x2.mul (local.get $c2) (local.get $vm)) (local.get $vd)))
        (local.set $c3 (f64x2.add (f64x2.mul (local.get $c3) (local.get $vm)) (local.get $vd)))
        (local.set $c4 (f64x2.add (f64x2.mul (local.get $c4) (local.get $vm)) (local.get $vd)))
        (local.set $c5 (f64x2.add (f64x2.mul (local.get $c5) (local.get $vm)) (local.get $vd)))
        (local.set $c6 (f64x2.add (f64x2.mul (local.get $c6) (local.get $vm)) (local.get $vd)))
        (local.set $c7 (f64x2.add (f64x2.mul (local.get $c7) (local.get $vm)) (local.get $vd)))
        (local.set $c8 (f64x2.add (f64x2.mul (local.get $c8) (local.get $vm)) (local.get $vd)))
        (local.set $c9 (f64x2.add (f64x2.mul (local.get $c9) (local.get $vm)) (local.get $vd)))
        (local.set $c10 (f64x2.add (f64x2.mul (local.get $c10) (local.get $vm)) (local.get $vd)))
        (local.set $c11 (f64x2.add (f64x2.mul (local.get $c11) (local.get $vm)) (local.get $vd)))
        (local.set $iters (i32.sub (local.get $iters) (i32.const 1)))
        (br_if $steps (i32.gt_s (local.get $iters) (i32.const 0)))))
    ;; the lanes, chain by chain: ((c0 + c1) + c2) + ... as lane 0 + lane 1 of the running sum
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c1)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c2)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c3)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c4)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c5)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c6)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c7)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c8)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c9)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c10)))
    (local.set $c0 (f64x2.add (local.get $c0) (local.get $c11)))
    (f64.add (f64x2.extract_lane 0 (local.get $c0)) (f64x2.extract_lane 1 (local.get $c0))))

  (func (export "chains_f32") (param $iters i32) (param $m f32) (param $d f32) (result f32)
    (local $vm v128) (local $vd v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128) (local $c5 v128)
    (local $c6 v128) (local $c7 v128) (local $c8 v128) (local $c9 v128) (local $c10 v128) (local $c11 v128)
    (local.set $vm (f32x4.splat (local.get $m)))
    (local.set $vd (f32x4.splat (local.get $d)))
    ;; chain i starts at (i, i + 0.25, i + 0.5, i + 0.75)
    (local.set $c0 (v128.const f32x4 0 0.25 0.5 0.75))
    (local.set $c1 (v128.const f32x4 1 1.25 1.5 1.75))
    (local.set $c2 (v128.const f32x4 2 2.25 2.5 2.75))
    (local.set $c3 (v128.const f32x4 3 3.25 3.5 3.75))
    (local.set $c4 (v128.const f32x4 4 4.25 4.5 4.75))
    (local.set $c5 (v128.const f32x4 5 5.25 5.5 5.75))
    (local.set $c6 (v128.const f32x4 6 6.25 6.5 6.75))
    (local.set $c7 (v128.const f32x4 7 7.25 7.5 7.75))
    (local.set $c8 (v128.const f32x4 8 8.25 8.5 8.75))
    (local.set $c9 (v128.const f32x4 9 9.25 9.5 9.75))
    (local.set $c10 (v128.const f32x4 10 10.25 10.5 10.75))
    (local.set $c11 (v128.const f32x4 11 11.25 11.5 11.75))
    (block $done
      (br_if $done (i32.le_s (local.get $iters) (i32.const 0)))
      (loop $steps
        (local.set $c0 (f32x4.add (f32x4.mul (local.get $c0) (local.get $vm)) (local.get $vd)))
        (local.set $c1 (f32x4.add (f32x4.mul (local.get $c1) (local.get $vm)) (local.get $vd)))
        (local.set $c2 (f32x4.add (f32x4.mul (local.get $c2) (local.get $vm)) (local.get $vd)))
        (local.set $c3 (f32x4.add (f32x4.mul (local.get $c3) (local.get $vm)) (local.get $vd)))
        (local.set $c4 (f32x4.add (f32x4.mul (local.get $c4) (local.get $vm)) (local.get $vd)))
        (local.set $c5 (f32x4.add (f32x4.mul (local.get $c5) (local.get $vm)) (local.get $vd)))
        (local.set $c6 (f32x4.add (f32x4.mul (local.get $c6) (local.get $vm)) (local.get $vd)))
        (local.set $c7 (f32x4.add (f32x4.mul (local.get $c7) (local.get $vm)) (local.get $vd)))
        (local.set $c8 (f32x4.add (f32x4.mul (local.get $c8) (local.get $vm)) (local.get $vd)))
        (local.set $c9 (f32x4.add (f32x4.mul (local.get $c9) (local.get $vm)) (local.get $vd)))
        (local.set $c10 (f32x4.add (f32x4.mul (local.get $c10) (local.get $vm)) (local.get $vd)))
        (local.set $c11 (f32x4.add (f32x4.mul (local.get $c11) (local.get $vm)) (local.get $vd)))
        (local.set $iters (i32.sub (local.get $iters) (i32.const 1)))
        (br_if $steps (i32.gt_s (local.get $iters) (i32.const 0)))))
    ;; the final values of the 48 lanes, summed in float64 (exact enough for the test's comparison)
    (f32.demote_f64 (f64.add
      (call $lanes_f32 (local.get $c0) (local.get $c1) (local.get $c2) (local.get $c3) (local.get $c4) (local.get $c5))
      (call $lanes_f32 (local.get $c6) (local.get $c7) (local.get $c8) (local.get $c9) (local.get $c10) (local.get $c11)))))

  ;; the sum, in chain order and lane order, of six float32x4 values' lanes, in float64
  (func $lanes_f32 (param $a v128) (param $b v128) (param $c v128) (param $d v128) (param $e v128) (param $f v128) (result f64)
    (f64.add (f64.add (f64.add (f64.add (f64.add
      (call $lanes4 (local.get $a)) (call $lanes4 (local.get $b))) (call $lanes4 (local.get $c)))
      (call $lanes4 (local.get $d))) (call $lanes4 (local.get $e))) (call $lanes4 (local.get $f))))

  (func $lanes4 (param $v v128) (result f64)
    (f64.add (f64.add (f64.add
      (f64.promote_f32 (f32x4.extract_lane 0 (local.get $v)))
      (f64.promote_f32 (f32x4.extract_lane 1 (local.get $v))))
      (f64.promote_f32 (f32x4.extract_lane 2 (local.get $v))))
      (f64.promote_f32 (f32x4.extract_lane 3 (local.get $v)))))

  ;; sum of the 32-bit words of [p, p + bytes) modulo 2^32; bytes a multiple of 64
  (func (export "read") (param $p i32) (param $bytes i32) (result i32)
    (local $end i32) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local.set $end (i32.add (local.get $p) (local.get $bytes)))
    (block $done
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (loop $lines ;; one 64-byte cache line: four loads into four independent sums
        (local.set $s0 (i32x4.add (local.get $s0) (v128.load offset=0 (local.get $p))))
        (local.set $s1 (i32x4.add (local.get $s1) (v128.load offset=16 (local.get $p))))
        (local.set $s2 (i32x4.add (local.get $s2) (v128.load offset=32 (local.get $p))))
        (local.set $s3 (i32x4.add (local.get $s3) (v128.load offset=48 (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br_if $lines (i32.lt_u (local.get $p) (local.get $end)))))
    (local.set $s0 (i32x4.add (i32x4.add (local.get $s0) (local.get $s1)) (i32x4.add (local.get $s2) (local.get $s3))))
    (i32.add (i32.add (i32x4.extract_lane 0 (local.get $s0)) (i32x4.extract_lane 1 (local.get $s0)))
             (i32.add (i32x4.extract_lane 2 (local.get $s0)) (i32x4.extract_lane 3 (local.get $s0)))))
)
