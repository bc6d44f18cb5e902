;; bfloat16 kernels for src/model/widen.ts and the weight memories of src/model/weights.ts. A bf16
;; value is the top half of a float32: its float32 bits are the bf16 bits shifted left by 16, so
;; both loops below are exact (no rounding anywhere but in gemv's float32 sums).
;;
;;   widen  in place at dst: n bf16 values stored at dst + 2n become n float32 values at dst,
;;          8 a step (n & ~7 of them; the caller does the rest). Front to back is safe: writing
;;          element i touches bytes [4i, 4i + 4), before the unread source of every element after
;;          i, at 2n + 2i.
;;   gemv   y[rows] = W[rows, cols] x[cols], W bf16 (rows one after another from w), x and y
;;          float32, cols a multiple of 8: decoding's matrix-vector product read straight from the
;;          bf16 bytes, 2 bytes a weight instead of widening to 4 and back. Each row sums 8 lanes
;;          (two float32x4 accumulators), then the lanes in the order ((0 + 1) + 2) + 3.
;;
;; The memory is imported: the tfjs wasm backend's own heap (unshared), or a weight memory of
;; src/model/weights.ts (shared where SharedArrayBuffer exists). `npm run kernels` (wabt) assembles
;; this file twice into bf16-wasm.ts, as written and with the import below made shared (the
;; "variant: shared" line); test/exact.test.ts checks both against a fresh assembly.
;; variant: shared
(module
  (import "env" "memory" (memory 0))

  (func (export "widen") (param $dst i32) (param $n i32)
    (local $src i32) (local $end i32) (local $v v128)
    (local.set $src (i32.add (local.get $dst) (i32.shl (local.get $n) (i32.const 1))))
    (local.set $end (i32.add (local.get $dst) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done
      (loop $step
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        (local.set $v (v128.load align=1 (local.get $src)))
        (v128.store align=1 (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 align=1 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $step))))

  (func (export "gemv") (param $w i32) (param $x i32) (param $y i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $acc0 v128) (local $acc1 v128) (local $v v128) (local $xp i32) (local $wend i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $acc0 (v128.const i32x4 0 0 0 0))
        (local.set $acc1 (v128.const i32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $wend (i32.add (local.get $w) (i32.shl (local.get $cols) (i32.const 1))))
        (block $row_done
          (loop $col8
            (br_if $row_done (i32.ge_u (local.get $w) (local.get $wend)))
            (local.set $v (v128.load align=1 (local.get $w)))
            (local.set $acc0 (f32x4.add (local.get $acc0)
              (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)) (v128.load align=1 (local.get $xp)))))
            (local.set $acc1 (f32x4.add (local.get $acc1)
              (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)) (v128.load offset=16 align=1 (local.get $xp)))))
            (local.set $w (i32.add (local.get $w) (i32.const 16)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 32)))
            (br $col8)))
        (local.set $v (f32x4.add (local.get $acc0) (local.get $acc1)))
        (f32.store (local.get $y)
          (f32.add (f32.add (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
            (f32x4.extract_lane 2 (local.get $v))) (f32x4.extract_lane 3 (local.get $v))))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row)))))
