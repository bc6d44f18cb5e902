;; Exact dot products for layers/exact.ts: y[m, n] = alpha * sum_k a[m, k] b[n, k], every product
;; and sum in float64, rounded to float32 once.
;;
;;   a  float64 [M, K]   the activations, widened to float64 by the caller (exact)
;;   b  float32 [N, K]   (dots)  or  bfloat16 [N, K] (dots_bf16): a weight matrix in the checkpoint's
;;                        [out, in] layout
;;   y  float32 [M, N], rows ldy apart (a thread fills its own columns of a wider y)
;;
;; M a multiple of 4, N of 2, K of 4 (dots) or 8 (dots_bf16): the caller pads with zeros.
;;
;; The rows of b go a panel at a time (`rows` rows, even): the panel is first widened to float64
;; (exact) into the thread's own buffer at `panel`, then every row of a passes over it. Widening
;; once per panel, not once per 4 rows of a, leaves the inner loop nothing but loads, multiplies
;; and adds; and each weight byte comes from main memory once.
;; A tile of 4 rows of a by 2 rows of the panel keeps 8 float64x2 accumulators (lanes: even and
;; odd k) in registers while k runs.
;;
;; The memory is shared: threads run the same module over it, each on its own rows of b.
;; Assembled by `npm run kernels` (wabt) into dots-wasm.ts; test/exact.test.ts checks the two agree.
(module
  (import "env" "memory" (memory 1 65536 shared))

  (func (export "dots") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n0 i32) (local $r i32)
    (loop $panels
      (local.set $r (call $min (local.get $rows) (i32.sub (local.get $N) (local.get $n0))))
      (call $widen_f32 (i32.add (local.get $b) (i32.shl (i32.mul (local.get $n0) (local.get $K)) (i32.const 2))) (local.get $panel) (i32.mul (local.get $r) (local.get $K)))
      (call $tiles (local.get $a) (local.get $panel) (i32.add (local.get $y) (i32.shl (local.get $n0) (i32.const 2))) (local.get $M) (local.get $r) (local.get $K) (local.get $ldy) (local.get $alpha))
      (local.set $n0 (i32.add (local.get $n0) (local.get $rows)))
      (br_if $panels (i32.lt_u (local.get $n0) (local.get $N)))))

  (func (export "dots_bf16") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n0 i32) (local $r i32)
    (loop $panels
      (local.set $r (call $min (local.get $rows) (i32.sub (local.get $N) (local.get $n0))))
      (call $widen_bf16 (i32.add (local.get $b) (i32.shl (i32.mul (local.get $n0) (local.get $K)) (i32.const 1))) (local.get $panel) (i32.mul (local.get $r) (local.get $K)))
      (call $tiles (local.get $a) (local.get $panel) (i32.add (local.get $y) (i32.shl (local.get $n0) (i32.const 2))) (local.get $M) (local.get $r) (local.get $K) (local.get $ldy) (local.get $alpha))
      (local.set $n0 (i32.add (local.get $n0) (local.get $rows)))
      (br_if $panels (i32.lt_u (local.get $n0) (local.get $N)))))

;; One row of a (decoding one token): y[n] = float32(alpha * sum_k a[k] b[n, k]) for bf16 rows of
  ;; b, two at a time, widened as they are read (each is used once, so there is no panel to share).
  ;; Same signature as dots_bf16; M, ldy, panel and rows are not used. N a multiple of 2, K of 8.
  (func (export "dots_row_bf16") (param $a i32) (param $b i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64) (param $panel i32) (param $rows i32)
    (local $n i32) (local $brow i32) (local $p i32) (local $q0 i32) (local $q1 i32) (local $qend i32)
    (local $c0 v128) (local $d0 v128) (local $c1 v128) (local $d1 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $v v128) (local $x v128)
    (local.set $brow (i32.shl (local.get $K) (i32.const 1)))
    (loop $cols
      (local.set $p (local.get $a))
      (local.set $q0 (i32.add (local.get $b) (i32.mul (local.get $n) (local.get $brow))))
      (local.set $q1 (i32.add (local.get $q0) (local.get $brow)))
      (local.set $qend (i32.add (local.get $q0) (local.get $brow)))
      (local.set $c0 (v128.const i64x2 0 0))
      (local.set $d0 (v128.const i64x2 0 0))
      (local.set $c1 (v128.const i64x2 0 0))
      (local.set $d1 (v128.const i64x2 0 0))
      (loop $k ;; 8 values of k: a[k..k+8] in four float64x2, against each row's 8 bf16 values
        (local.set $a0 (v128.load offset=0 (local.get $p)))
        (local.set $a1 (v128.load offset=16 (local.get $p)))
        (local.set $a2 (v128.load offset=32 (local.get $p)))
        (local.set $a3 (v128.load offset=48 (local.get $p)))
        (local.set $v (v128.load (local.get $q0)))
        (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $c0 (f64x2.add (local.get $c0) (f64x2.mul (local.get $a0) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $d0 (f64x2.add (local.get $d0) (f64x2.mul (local.get $a1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (local.set $x (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $c0 (f64x2.add (local.get $c0) (f64x2.mul (local.get $a2) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $d0 (f64x2.add (local.get $d0) (f64x2.mul (local.get $a3) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (local.set $v (v128.load (local.get $q1)))
        (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $c1 (f64x2.add (local.get $c1) (f64x2.mul (local.get $a0) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $d1 (f64x2.add (local.get $d1) (f64x2.mul (local.get $a1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (local.set $x (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $c1 (f64x2.add (local.get $c1) (f64x2.mul (local.get $a2) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $d1 (f64x2.add (local.get $d1) (f64x2.mul (local.get $a3) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (local.set $q0 (i32.add (local.get $q0) (i32.const 16)))
        (local.set $q1 (i32.add (local.get $q1) (i32.const 16)))
        (br_if $k (i32.lt_u (local.get $q0) (local.get $qend))))
      (f32.store offset=0 (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))) (call $total (f64x2.add (local.get $c0) (local.get $d0)) (local.get $alpha)))
      (f32.store offset=4 (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))) (call $total (f64x2.add (local.get $c1) (local.get $d1)) (local.get $alpha)))
      (local.set $n (i32.add (local.get $n) (i32.const 2)))
      (br_if $cols (i32.lt_u (local.get $n) (local.get $N)))))

  ;; p[i] = float64(b[i]) for n float32 values (n a multiple of 4)
  (func $widen_f32 (param $b i32) (param $p i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2))))
    (loop $k
      (local.set $v (v128.load (local.get $b)))
      (v128.store offset=0 (local.get $p) (f64x2.promote_low_f32x4 (local.get $v)))
      (v128.store offset=16 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
      (local.set $b (i32.add (local.get $b) (i32.const 16)))
      (local.set $p (i32.add (local.get $p) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $b) (local.get $end)))))

  ;; p[i] = float64(b[i]) for n bfloat16 values (n a multiple of 8): a bf16 value is the top half of a float32
  (func $widen_bf16 (param $b i32) (param $p i32) (param $n i32)
    (local $end i32) (local $v v128) (local $x v128)
    (local.set $end (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 1))))
    (loop $k
      (local.set $v (v128.load (local.get $b)))
      (local.set $x (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
      (v128.store offset=0 (local.get $p) (f64x2.promote_low_f32x4 (local.get $x)))
      (v128.store offset=16 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
      (local.set $x (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
      (v128.store offset=32 (local.get $p) (f64x2.promote_low_f32x4 (local.get $x)))
      (v128.store offset=48 (local.get $p) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
      (local.set $b (i32.add (local.get $b) (i32.const 16)))
      (local.set $p (i32.add (local.get $p) (i32.const 64)))
      (br_if $k (i32.lt_u (local.get $b) (local.get $end)))))

  ;; y[m, n] = float32(alpha * sum_k a[m, k] p[n, k]) for m < M, n < N; a and p float64 [., K]
  (func $tiles (param $a i32) (param $p i32) (param $y i32) (param $M i32) (param $N i32) (param $K i32) (param $ldy i32) (param $alpha f64)
    (local $m i32) (local $n i32) (local $row i32) (local $qend i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $q0 i32) (local $q1 i32) (local $yp i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128) (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $x v128)
    (local.set $row (i32.shl (local.get $K) (i32.const 3)))           ;; bytes per float64 row
    (local.set $m (i32.const 0))
    (loop $rows
      (local.set $n (i32.const 0))
      (loop $cols
        ;; p_r: row m + r of a;  q_c: row n + c of the panel
        (local.set $p0 (i32.add (local.get $a) (i32.mul (local.get $m) (local.get $row))))
        (local.set $p1 (i32.add (local.get $p0) (local.get $row)))
        (local.set $p2 (i32.add (local.get $p1) (local.get $row)))
        (local.set $p3 (i32.add (local.get $p2) (local.get $row)))
        (local.set $q0 (i32.add (local.get $p) (i32.mul (local.get $n) (local.get $row))))
        (local.set $q1 (i32.add (local.get $q0) (local.get $row)))
        (local.set $qend (i32.add (local.get $q0) (local.get $row)))
        (local.set $c00 (v128.const i64x2 0 0))
        (local.set $c01 (v128.const i64x2 0 0))
        (local.set $c10 (v128.const i64x2 0 0))
        (local.set $c11 (v128.const i64x2 0 0))
        (local.set $c20 (v128.const i64x2 0 0))
        (local.set $c21 (v128.const i64x2 0 0))
        (local.set $c30 (v128.const i64x2 0 0))
        (local.set $c31 (v128.const i64x2 0 0))
        (loop $k ;; 4 values of k per step, two per lane pair
          (local.set $b0 (v128.load offset=0 (local.get $q0)))
          (local.set $b1 (v128.load offset=0 (local.get $q1)))
          (local.set $x (v128.load offset=0 (local.get $p0)))
          (local.set $c00 (f64x2.add (local.get $c00) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c01 (f64x2.add (local.get $c01) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=0 (local.get $p1)))
          (local.set $c10 (f64x2.add (local.get $c10) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c11 (f64x2.add (local.get $c11) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=0 (local.get $p2)))
          (local.set $c20 (f64x2.add (local.get $c20) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c21 (f64x2.add (local.get $c21) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=0 (local.get $p3)))
          (local.set $c30 (f64x2.add (local.get $c30) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c31 (f64x2.add (local.get $c31) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $b0 (v128.load offset=16 (local.get $q0)))
          (local.set $b1 (v128.load offset=16 (local.get $q1)))
          (local.set $x (v128.load offset=16 (local.get $p0)))
          (local.set $c00 (f64x2.add (local.get $c00) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c01 (f64x2.add (local.get $c01) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=16 (local.get $p1)))
          (local.set $c10 (f64x2.add (local.get $c10) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c11 (f64x2.add (local.get $c11) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=16 (local.get $p2)))
          (local.set $c20 (f64x2.add (local.get $c20) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c21 (f64x2.add (local.get $c21) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $x (v128.load offset=16 (local.get $p3)))
          (local.set $c30 (f64x2.add (local.get $c30) (f64x2.mul (local.get $x) (local.get $b0))))
          (local.set $c31 (f64x2.add (local.get $c31) (f64x2.mul (local.get $x) (local.get $b1))))
          (local.set $p0 (i32.add (local.get $p0) (i32.const 32)))
          (local.set $p1 (i32.add (local.get $p1) (i32.const 32)))
          (local.set $p2 (i32.add (local.get $p2) (i32.const 32)))
          (local.set $p3 (i32.add (local.get $p3) (i32.const 32)))
          (local.set $q0 (i32.add (local.get $q0) (i32.const 32)))
          (local.set $q1 (i32.add (local.get $q1) (i32.const 32)))
          (br_if $k (i32.lt_u (local.get $q0) (local.get $qend))))
        ;; y[m + r, n + c] = float32(alpha * (lane 0 + lane 1))
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
        (f32.store offset=4 (local.get $yp) (call $total (local.get $c31) (local.get $alpha)))
        (local.set $n (i32.add (local.get $n) (i32.const 2)))
        (br_if $cols (i32.lt_u (local.get $n) (local.get $N))))
      (local.set $m (i32.add (local.get $m) (i32.const 4)))
      (br_if $rows (i32.lt_u (local.get $m) (local.get $M)))))

  ;; float32(alpha * (lane 0 + lane 1)): the one rounding to float32
  (func $total (param $c v128) (param $alpha f64) (result f32)
    (f32.demote_f64 (f64.mul (local.get $alpha) (f64.add (f64x2.extract_lane 0 (local.get $c)) (f64x2.extract_lane 1 (local.get $c))))))

  (func $min (param $x i32) (param $y i32) (result i32)
    (select (local.get $x) (local.get $y) (i32.lt_u (local.get $x) (local.get $y))))
)
