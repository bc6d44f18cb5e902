;; Exact dot products for layers/exact.ts: y[m, n] = alpha * sum_k a[m, k] b[n, k], every product
;; and sum in float64, rounded to float32 once.
;;
;;   a  float64, packed by the caller in groups of 4 rows: for each group, for each pair of k, the
;;       4 rows' two values (64 bytes), so one pointer walks a tile    (widened from float32: exact)
;;   b  float32 [N, K]   (dots)  or  bfloat16 [N, K] (dots_bf16): a weight matrix in the checkpoint's
;;                        [out, in] layout, as it lies
;;   y  float32 [M, N], rows ldy apart (a thread fills its own columns of a wider y)
;;
;; M a multiple of 4, N of 2, K of 4 (dots) or 8 (dots_bf16): the caller pads with zeros.
;;
;; The rows of b go a panel at a time (`rows` rows, even): the panel is first widened to float64
;; (exact) into the thread's own buffer at `panel`, packed like a in pairs of rows, then every
;; group of 4 rows of a passes over it ($tiles, blocked for the caches). Widening once per panel,
;; not once per 4 rows of a, leaves the inner loop nothing but loads, multiplies and adds; each
;; weight byte comes from main memory once; and the packing keeps the loop to two pointers, so the
;; 8 float64x2 accumulators of a tile of 4 rows of a by 2 rows of b (lanes: even and odd k) and its
;; 6 loads fit the 16 vector registers without spilling. After the panel, at panel + rows * K * 8,
;; the thread's room for the tiles' sums between chunks of k (rows * 1024 bytes).
;;
;; The memory is shared: threads run the same module over it, each on the chunks of rows of b it
;; claims (dots.ts, claimRows).
;; Assembled by `npm run kernels` (wabt) into dots-wasm.ts; test/exact.test.ts checks the two agree.
(module
  (import "env" "memory" (memory 1 65536 shared))

  (func (export "dots") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n0 i32) (local $r i32)
    (loop $panels
      (local.set $r (call $min (local.get $rows) (i32.sub (local.get $N) (local.get $n0))))
      (call $widen_f32 (i32.add (local.get $b) (i32.shl (i32.mul (local.get $n0) (local.get $K)) (i32.const 2))) (local.get $panel) (local.get $r) (local.get $K))
      (call $tiles (local.get $a) (local.get $panel) (i32.add (local.get $y) (i32.shl (local.get $n0) (i32.const 2))) (local.get $M) (local.get $r) (local.get $K) (local.get $ldy) (local.get $alpha)
        (i32.add (local.get $panel) (i32.shl (i32.mul (local.get $rows) (local.get $K)) (i32.const 3)))) ;; the tiles' sums: after the panel
      (local.set $n0 (i32.add (local.get $n0) (local.get $rows)))
      (br_if $panels (i32.lt_u (local.get $n0) (local.get $N)))))

  (func (export "dots_bf16") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n0 i32) (local $r i32)
    (loop $panels
      (local.set $r (call $min (local.get $rows) (i32.sub (local.get $N) (local.get $n0))))
      (call $widen_bf16 (i32.add (local.get $b) (i32.shl (i32.mul (local.get $n0) (local.get $K)) (i32.const 1))) (local.get $panel) (local.get $r) (local.get $K))
      (call $tiles (local.get $a) (local.get $panel) (i32.add (local.get $y) (i32.shl (local.get $n0) (i32.const 2))) (local.get $M) (local.get $r) (local.get $K) (local.get $ldy) (local.get $alpha)
        (i32.add (local.get $panel) (i32.shl (i32.mul (local.get $rows) (local.get $K)) (i32.const 3)))) ;; the tiles' sums: after the panel
      (local.set $n0 (i32.add (local.get $n0) (local.get $rows)))
      (br_if $panels (i32.lt_u (local.get $n0) (local.get $N)))))

  ;; One row of a (decoding one token): y[n] = float32(alpha * sum_k a[k] b[n, k]) for bf16 rows of
  ;; b, two at a time, widened as they are read (each is used once, so there is no panel to share).
  ;; Same signature as dots_bf16; M, ldy, panel and rows are not used. N a multiple of 2, K of 8.
  ;; Reading the weights is the floor here, so every step of widening counts:
  ;;   - even/odd split: 8 bf16 values are 4 words [b1 b0 | b3 b2 | ...]; shifting each word left by
  ;;     16 leaves b0 b2 b4 b6 as float32, masking off its low half leaves b1 b3 b5 b7: two
  ;;     operations widen 8 values to float32 (a bf16 value is the top half of a float32). So the
  ;;     caller packs a in the same order, each 8 values of k as a0 a2 a4 a6 a1 a3 a5 a7.
  ;;   - a pairwise sum of a row's four products before it meets the row's running sum: the
  ;;     running sum then waits on one add per 8 values of k, not four in a row (a chain of
  ;;     dependent adds, not the adder's throughput, bounded the earlier loop).
  (func (export "dots_row_bf16") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n i32) (local $brow i32) (local $p i32) (local $q0 i32) (local $q1 i32) (local $qend i32)
    (local $c0 v128) (local $c1 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $v v128) (local $e v128) (local $o v128)
    (local.set $brow (i32.shl (local.get $K) (i32.const 1)))
    (loop $cols
      (local.set $p (local.get $a))
      (local.set $q0 (i32.add (local.get $b) (i32.mul (local.get $n) (local.get $brow))))
      (local.set $q1 (i32.add (local.get $q0) (local.get $brow)))
      (local.set $qend (i32.add (local.get $q0) (local.get $brow)))
      (local.set $c0 (v128.const i64x2 0 0))
      (local.set $c1 (v128.const i64x2 0 0))
      (loop $k ;; 8 values of k: a[k..k+8] (even, then odd) in four float64x2, against each row's 8 bf16 values
        (local.set $a0 (v128.load offset=0 (local.get $p)))
        (local.set $a1 (v128.load offset=16 (local.get $p)))
        (local.set $a2 (v128.load offset=32 (local.get $p)))
        (local.set $a3 (v128.load offset=48 (local.get $p)))
        (local.set $v (v128.load (local.get $q0)))
        (local.set $e (i32x4.shl (local.get $v) (i32.const 16)))
        (local.set $o (v128.and (local.get $v) (v128.const i32x4 0xffff0000 0xffff0000 0xffff0000 0xffff0000)))
        (local.set $c0 (f64x2.add (local.get $c0) (f64x2.add
          (f64x2.add (f64x2.mul (local.get $a0) (f64x2.promote_low_f32x4 (local.get $e)))
                     (f64x2.mul (local.get $a1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $e) (local.get $e)))))
          (f64x2.add (f64x2.mul (local.get $a2) (f64x2.promote_low_f32x4 (local.get $o)))
                     (f64x2.mul (local.get $a3) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $o) (local.get $o))))))))
        (local.set $v (v128.load (local.get $q1)))
        (local.set $e (i32x4.shl (local.get $v) (i32.const 16)))
        (local.set $o (v128.and (local.get $v) (v128.const i32x4 0xffff0000 0xffff0000 0xffff0000 0xffff0000)))
        (local.set $c1 (f64x2.add (local.get $c1) (f64x2.add
          (f64x2.add (f64x2.mul (local.get $a0) (f64x2.promote_low_f32x4 (local.get $e)))
                     (f64x2.mul (local.get $a1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $e) (local.get $e)))))
          (f64x2.add (f64x2.mul (local.get $a2) (f64x2.promote_low_f32x4 (local.get $o)))
                     (f64x2.mul (local.get $a3) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $o) (local.get $o))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (local.set $q0 (i32.add (local.get $q0) (i32.const 16)))
        (local.set $q1 (i32.add (local.get $q1) (i32.const 16)))
        (br_if $k (i32.lt_u (local.get $q0) (local.get $qend))))
      (f32.store offset=0 (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))) (call $total (local.get $c0) (local.get $alpha)))
      (f32.store offset=4 (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))) (call $total (local.get $c1) (local.get $alpha)))
      (local.set $n (i32.add (local.get $n) (i32.const 2)))
      (br_if $cols (i32.lt_u (local.get $n) (local.get $N)))))

  ;; the panel from r rows of b (r even), K values each: rows 2j and 2j+1 packed by pairs of k
  ;; (32 bytes: the two values of row 2j, then of row 2j+1), each value widened to float64 (exact)
  (func $widen_f32 (param $b i32) (param $p i32) (param $r i32) (param $K i32)
    (local $brow i32) (local $q i32) (local $end i32) (local $last i32) (local $v v128) (local $w v128)
    (local.set $brow (i32.shl (local.get $K) (i32.const 2)))
    (local.set $last (i32.add (local.get $b) (i32.mul (local.get $r) (local.get $brow))))
    (loop $pairs
      (local.set $q (local.get $b))
      (local.set $end (i32.add (local.get $b) (local.get $brow)))
      (loop $k ;; 4 values of k from each of the two rows
        (local.set $v (v128.load (local.get $q)))
        (local.set $w (v128.load (i32.add (local.get $q) (local.get $brow))))
        (v128.store offset=0 (local.get $p) (f64x2.promote_low_f32x4 (local.get $v)))
        (v128.store offset=16 (local.get $p) (f64x2.promote_low_f32x4 (local.get $w)))
        (v128.store offset=32 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
        (v128.store offset=48 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $w) (local.get $w))))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br_if $k (i32.lt_u (local.get $q) (local.get $end))))
      (local.set $b (i32.add (local.get $b) (i32.shl (local.get $brow) (i32.const 1))))
      (br_if $pairs (i32.lt_u (local.get $b) (local.get $last)))))

  ;; the same from bfloat16 rows (K a multiple of 8): a bf16 value is the top half of a float32
  (func $widen_bf16 (param $b i32) (param $p i32) (param $r i32) (param $K i32)
    (local $brow i32) (local $q i32) (local $end i32) (local $last i32) (local $v v128) (local $w v128) (local $x v128) (local $z v128)
    (local.set $brow (i32.shl (local.get $K) (i32.const 1)))
    (local.set $last (i32.add (local.get $b) (i32.mul (local.get $r) (local.get $brow))))
    (loop $pairs
      (local.set $q (local.get $b))
      (local.set $end (i32.add (local.get $b) (local.get $brow)))
      (loop $k ;; 8 values of k from each of the two rows
        (local.set $v (v128.load (local.get $q)))
        (local.set $w (v128.load (i32.add (local.get $q) (local.get $brow))))
        (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $z (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $w)) (i32.const 16)))
        (v128.store offset=0 (local.get $p) (f64x2.promote_low_f32x4 (local.get $x)))
        (v128.store offset=16 (local.get $p) (f64x2.promote_low_f32x4 (local.get $z)))
        (v128.store offset=32 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
        (v128.store offset=48 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $z) (local.get $z))))
        (local.set $x (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $z (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $w)) (i32.const 16)))
        (v128.store offset=64 (local.get $p) (f64x2.promote_low_f32x4 (local.get $x)))
        (v128.store offset=80 (local.get $p) (f64x2.promote_low_f32x4 (local.get $z)))
        (v128.store offset=96 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
        (v128.store offset=112 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $z) (local.get $z))))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (local.set $p (i32.add (local.get $p) (i32.const 128)))
        (br_if $k (i32.lt_u (local.get $q) (local.get $end))))
      (local.set $b (i32.add (local.get $b) (i32.shl (local.get $brow) (i32.const 1))))
      (br_if $pairs (i32.lt_u (local.get $b) (local.get $last)))))

  ;; y[m, n] = float32(alpha * sum_k a[m, k] p[n, k]) for m < M, n < N: a and p packed float64.
  ;; Blocked for the caches (the tile itself, 4 rows of a by 2 of p, is the same at every level):
  ;;   - k in chunks of 256 (KC): a group's chunk of a (8 KiB) stays in the first-level cache while
  ;;     every pair of the panel's rows passes it, and the panel's chunk (at most 128 rows, 256 KiB)
  ;;     stays in the core's second-level cache; each tile keeps its 8 sums at `acc` (128 bytes)
  ;;     between chunks. Without it a tile streamed 96 bytes per step from the second-level cache.
  ;;   - rows of a in blocks of 64 (MB), so that a block's chunk (128 KiB) and its sums (64 KiB at
  ;;     most) stay there beside the panel's: a is read from further out once per panel, and a panel
  ;;     of up to 128 rows shares each read of a, where one of full rows held only about 10.
  ;; The sums of a tile go over k in the same order whatever the blocking: chunk by chunk, even and
  ;; odd k in their own lanes; the blocking changes only where they wait between chunks.
  (func $tiles (param $a i32) (param $p i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $acc i32)
    (local $mb i32) (local $mend i32) (local $k0 i32) (local $kc i32) (local $m i32) (local $n i32) (local $q i32)
    (local $pa i32) (local $pb i32) (local $pend i32) (local $yp i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128) (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128)
    (loop $blocks ;; rows [mb, mend) of a
      (local.set $mend (call $min (i32.add (local.get $mb) (i32.const 64)) (local.get $M)))
      (local.set $k0 (i32.const 0))
      (loop $chunks ;; k in [k0, k0 + kc)
        (local.set $kc (call $min (i32.const 256) (i32.sub (local.get $K) (local.get $k0))))
        (local.set $q (local.get $acc))
        (local.set $m (local.get $mb))
        (loop $rows
          (local.set $n (i32.const 0))
          (loop $cols
            ;; pa: the group of rows m..m+3 of a (K * 32 bytes), at k0; pb: the pair of rows n, n+1 of the panel (K * 16 bytes), at k0
            (local.set $pa (i32.add (local.get $a) (i32.add (i32.mul (local.get $m) (i32.shl (local.get $K) (i32.const 3))) (i32.shl (local.get $k0) (i32.const 5)))))
            (local.set $pb (i32.add (local.get $p) (i32.add (i32.mul (local.get $n) (i32.shl (local.get $K) (i32.const 3))) (i32.shl (local.get $k0) (i32.const 4)))))
            (local.set $pend (i32.add (local.get $pb) (i32.shl (local.get $kc) (i32.const 4))))
            (if (i32.eqz (local.get $k0))
              (then
                (local.set $c00 (v128.const i64x2 0 0))
                (local.set $c01 (v128.const i64x2 0 0))
                (local.set $c10 (v128.const i64x2 0 0))
                (local.set $c11 (v128.const i64x2 0 0))
                (local.set $c20 (v128.const i64x2 0 0))
                (local.set $c21 (v128.const i64x2 0 0))
                (local.set $c30 (v128.const i64x2 0 0))
                (local.set $c31 (v128.const i64x2 0 0))
              )
              (else
                (local.set $c00 (v128.load offset=0 (local.get $q)))
                (local.set $c01 (v128.load offset=16 (local.get $q)))
                (local.set $c10 (v128.load offset=32 (local.get $q)))
                (local.set $c11 (v128.load offset=48 (local.get $q)))
                (local.set $c20 (v128.load offset=64 (local.get $q)))
                (local.set $c21 (v128.load offset=80 (local.get $q)))
                (local.set $c30 (v128.load offset=96 (local.get $q)))
                (local.set $c31 (v128.load offset=112 (local.get $q)))
              ))
            (loop $k ;; one pair of k: two rows of b, four rows of a
              (local.set $b0 (v128.load offset=0 (local.get $pb)))
              (local.set $b1 (v128.load offset=16 (local.get $pb)))
              (local.set $x (v128.load offset=0 (local.get $pa)))
              (local.set $c00 (f64x2.add (local.get $c00) (f64x2.mul (local.get $x) (local.get $b0))))
              (local.set $c01 (f64x2.add (local.get $c01) (f64x2.mul (local.get $x) (local.get $b1))))
              (local.set $x (v128.load offset=16 (local.get $pa)))
              (local.set $c10 (f64x2.add (local.get $c10) (f64x2.mul (local.get $x) (local.get $b0))))
              (local.set $c11 (f64x2.add (local.get $c11) (f64x2.mul (local.get $x) (local.get $b1))))
              (local.set $x (v128.load offset=32 (local.get $pa)))
              (local.set $c20 (f64x2.add (local.get $c20) (f64x2.mul (local.get $x) (local.get $b0))))
              (local.set $c21 (f64x2.add (local.get $c21) (f64x2.mul (local.get $x) (local.get $b1))))
              (local.set $x (v128.load offset=48 (local.get $pa)))
              (local.set $c30 (f64x2.add (local.get $c30) (f64x2.mul (local.get $x) (local.get $b0))))
              (local.set $c31 (f64x2.add (local.get $c31) (f64x2.mul (local.get $x) (local.get $b1))))
              (local.set $pa (i32.add (local.get $pa) (i32.const 64)))
              (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
              (br_if $k (i32.lt_u (local.get $pb) (local.get $pend))))
            (if (i32.lt_u (i32.add (local.get $k0) (local.get $kc)) (local.get $K))
              (then ;; more chunks to come: the sums wait at q
                (v128.store offset=0 (local.get $q) (local.get $c00))
                (v128.store offset=16 (local.get $q) (local.get $c01))
                (v128.store offset=32 (local.get $q) (local.get $c10))
                (v128.store offset=48 (local.get $q) (local.get $c11))
                (v128.store offset=64 (local.get $q) (local.get $c20))
                (v128.store offset=80 (local.get $q) (local.get $c21))
                (v128.store offset=96 (local.get $q) (local.get $c30))
                (v128.store offset=112 (local.get $q) (local.get $c31))
              )
              (else ;; y[m + r, n + c] = float32(alpha * (lane 0 + lane 1))
                (local.set $yp (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $m) (local.get $ldy)) (local.get $n)) (i32.const 2))))
                (f32.store offset=0 (local.get $yp) (call $total (local.get $c00) (local.get $alpha)))
                (f32.store offset=4 (local.get $yp) (call $total (local.get $c01) (local.get $alpha)))
                (local.set $yp (i32.add (local.get $yp) (i32.shl (local.get $ldy) (i32.const 2))))
                (f32.store offset=0 (local.get $yp) (call $total (local.get $c10) (local.get $alpha)))
                (f32.store offset=4 (local.get $yp) (call $total (local.get $c11) (local.get $alpha)))
                (local.set $yp (i32.add (local.get $yp) (i32.shl (local.get $ldy) (i32.const 2))))
                (f32.store offset=0 (local.get $yp) (call $total (local.get $c20) (local.get $alpha)))
                (f32.store offset=4 (local.get $yp) (call $total (local.get $c21) (local.get $alpha)))
                (local.set $yp (i32.add (local.get $yp) (i32.shl (local.get $ldy) (i32.const 2))))
                (f32.store offset=0 (local.get $yp) (call $total (local.get $c30) (local.get $alpha)))
                (f32.store offset=4 (local.get $yp) (call $total (local.get $c31) (local.get $alpha)))))
            (local.set $q (i32.add (local.get $q) (i32.const 128)))
            (local.set $n (i32.add (local.get $n) (i32.const 2)))
            (br_if $cols (i32.lt_u (local.get $n) (local.get $N))))
          (local.set $m (i32.add (local.get $m) (i32.const 4)))
          (br_if $rows (i32.lt_u (local.get $m) (local.get $mend))))
        (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
        (br_if $chunks (i32.lt_u (local.get $k0) (local.get $K))))
      (local.set $mb (i32.add (local.get $mb) (i32.const 64)))
      (br_if $blocks (i32.lt_u (local.get $mb) (local.get $M)))))

  ;; float32(alpha * (lane 0 + lane 1)): the one rounding to float32
  (func $total (param $c v128) (param $alpha f64) (result f32)
    (f32.demote_f64 (f64.mul (local.get $alpha) (f64.add (f64x2.extract_lane 0 (local.get $c)) (f64x2.extract_lane 1 (local.get $c))))))

  (func $min (param $x i32) (param $y i32) (result i32)
    (select (local.get $x) (local.get $y) (i32.lt_u (local.get $x) (local.get $y))))
)
