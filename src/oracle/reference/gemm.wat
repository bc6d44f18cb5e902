;; The float64 reference's matrix products (./gemm.ts): y[t, o] = sum_k x[t, k] w[o, k], every
;; product and every sum in float64. Written for the reference alone: it shares nothing with the
;; model's kernels (layers/kernels/), which it is there to judge.
;;
;;   x  float64 [T, K], given packed by pack_x (below)                       (activations)
;;   w  float64 [O, K] rows ldw apart (kind 0)  or  bfloat16 [O, K] rows ldw apart (kind 1: a
;;      checkpoint matrix as it lies; bf16 is the top half of a float32, so widening is exact)
;;   y  float64, rows ldy apart; a thread fills its own columns [o0, o1)
;;
;; The tricks, each for speed alone (none changes what is computed, only the order of the sums):
;; - SIMD: float64x2 lanes hold the even and the odd k of a sum; the two lanes are added at the end.
;; - Register tile: 4 rows of x against 2 rows of w at once, 8 accumulators: each loaded x pair
;;   serves 2 products and each w pair 4 (6 loads for 16 arithmetic instructions).
;; - Cache blocks: k goes KC = 256 at a time. A block of OB = 32 rows of w by KC is widened (or
;;   copied) once into the thread's buffer `pack` (64 KiB, second-level cache) and then serves every
;;   row of x; a 4-row block of x (8 KiB) stays in the first-level cache across those 32 rows. A
;;   sum over K > KC is therefore taken as KC-long partial sums, added in order of k.
;; - Packing: x in groups of 4 rows and w in pairs of rows, interleaved by pairs of k, so the tile
;;   walks two pointers with constant offsets. Padding rows and k are zeros (adding +0 or 0 * 0 to
;;   a sum changes nothing) and padded rows of y are never written.
;;
;; The result for each (t, o) does not depend on how the columns are split among threads.
;; Assembled by tools/assemble-reference.ts (wabt) into gemm-wasm.ts; test/reference-speed.test.ts
;; checks the two agree.
(module
  (import "env" "memory" (memory 1 65536 shared))

  (func $min (param $a i32) (param $b i32) (result i32)
    (select (local.get $a) (local.get $b) (i32.lt_u (local.get $a) (local.get $b))))

  ;; Packs x [T, K] (rows ldx apart) for gemm: for each k block of KC, for each group of 4 rows,
  ;; for each pair of k: the 4 rows' two values. T is padded to T4 = 4 ceil(T / 4) rows and each
  ;; block's k to an even count, with zeros. A block starts at kb * T4 * 8 bytes from dst.
  (func (export "pack_x") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $dst i32)
    (local $k0 i32) (local $nk i32) (local $nk2 i32) (local $t4 i32) (local $g i32) (local $r i32) (local $k i32)
    (local $d i32) (local $t i32) (local $src i32)
    (local.set $t4 (i32.and (i32.add (local.get $T) (i32.const 3)) (i32.const -4)))
    (local.set $d (local.get $dst))
    (loop $kb
      (local.set $nk (call $min (i32.const 256) (i32.sub (local.get $K) (local.get $k0))))
      (local.set $nk2 (i32.and (i32.add (local.get $nk) (i32.const 1)) (i32.const -2)))
      (local.set $g (i32.const 0))
      (loop $groups
        (local.set $k (i32.const 0))
        (loop $kpairs
          (local.set $r (i32.const 0))
          (loop $rows
            (local.set $t (i32.add (local.get $g) (local.get $r)))
            (local.set $src (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ldx)) (i32.add (local.get $k0) (local.get $k))) (i32.const 3))))
            (f64.store offset=0 (local.get $d)
              (select (f64.load (local.get $src)) (f64.const 0) (i32.lt_u (local.get $t) (local.get $T))))
            (f64.store offset=8 (local.get $d)
              (select (f64.load offset=8 (local.get $src)) (f64.const 0)
                (i32.and (i32.lt_u (local.get $t) (local.get $T)) (i32.lt_u (i32.add (local.get $k) (i32.const 1)) (local.get $nk)))))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br_if $rows (i32.lt_u (local.get $r) (i32.const 4))))
          (local.set $k (i32.add (local.get $k) (i32.const 2)))
          (br_if $kpairs (i32.lt_u (local.get $k) (local.get $nk2))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br_if $groups (i32.lt_u (local.get $g) (local.get $t4))))
      (local.set $d (i32.add (local.get $dst) (i32.shl (i32.mul (i32.add (local.get $k0) (i32.const 256)) (local.get $t4)) (i32.const 3))))
      (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
      (br_if $kb (i32.lt_u (local.get $k0) (local.get $K)))))

  ;; Packs rows [0, rows) by k [k0, k0 + nk) of w into `pack`: pairs of rows, for each pair of k
  ;; the two rows' two values (a missing row and an odd last k are zeros). kind 0: float64 w,
  ;; 1: bfloat16 w (bits shifted into a float32's top half, then promoted: exact).
  (func $pack_w (param $kind i32) (param $w i32) (param $ldw i32) (param $k0 i32) (param $rows i32) (param $nk i32) (param $pack i32)
    (local $p i32) (local $k i32) (local $r i32) (local $row i32) (local $d i32) (local $nk2 i32) (local $src i32)
    (local.set $nk2 (i32.and (i32.add (local.get $nk) (i32.const 1)) (i32.const -2)))
    (local.set $d (local.get $pack))
    (local.set $p (i32.const 0))
    (loop $pairs
      (local.set $k (i32.const 0))
      (loop $kpairs
        (local.set $r (i32.const 0))
        (loop $two
          (local.set $row (i32.add (local.get $p) (local.get $r)))
          (local.set $row (i32.add (local.get $p) (local.get $r)))
          (local.set $src (i32.add (i32.mul (local.get $row) (local.get $ldw)) (i32.add (local.get $k0) (local.get $k)))) ;; element index
          (if (i32.and (i32.lt_u (local.get $row) (local.get $rows)) (i32.lt_u (i32.add (local.get $k) (i32.const 1)) (local.get $nk)))
            (then ;; both values there: the fast path
              (if (local.get $kind)
                (then (v128.store (local.get $d) (f64x2.promote_low_f32x4 (i32x4.shl
                  (i32x4.extend_low_i16x8_u (v128.load32_zero (i32.add (local.get $w) (i32.shl (local.get $src) (i32.const 1))))) (i32.const 16)))))
                (else (v128.store (local.get $d) (v128.load (i32.add (local.get $w) (i32.shl (local.get $src) (i32.const 3))))))))
            (else ;; a padding row, or an odd last k
              (f64.store offset=0 (local.get $d) (call $wval (local.get $kind) (local.get $w) (local.get $ldw) (local.get $row) (i32.add (local.get $k0) (local.get $k))
                (i32.lt_u (local.get $row) (local.get $rows))))
              (f64.store offset=8 (local.get $d) (call $wval (local.get $kind) (local.get $w) (local.get $ldw) (local.get $row) (i32.add (i32.add (local.get $k0) (local.get $k)) (i32.const 1))
                (i32.and (i32.lt_u (local.get $row) (local.get $rows)) (i32.lt_u (i32.add (local.get $k) (i32.const 1)) (local.get $nk)))))))
          (local.set $d (i32.add (local.get $d) (i32.const 16)))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br_if $two (i32.lt_u (local.get $r) (i32.const 2))))
        (local.set $k (i32.add (local.get $k) (i32.const 2)))
        (br_if $kpairs (i32.lt_u (local.get $k) (local.get $nk2))))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (br_if $pairs (i32.lt_u (local.get $p) (local.get $rows)))))

  ;; w[row, k] as float64, or 0 where `valid` is 0 (nothing is read there).
  (func $wval (param $kind i32) (param $w i32) (param $ldw i32) (param $row i32) (param $k i32) (param $valid i32) (result f64)
    (local $i i32)
    (if (i32.eqz (local.get $valid)) (then (return (f64.const 0))))
    (local.set $i (i32.add (i32.mul (local.get $row) (local.get $ldw)) (local.get $k)))
    (if (result f64) (local.get $kind)
      (then (f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $w) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))))
      (else (f64.load (i32.add (local.get $w) (i32.shl (local.get $i) (i32.const 3)))))))

  ;; Columns [o0, o1) of y = x w^T. xp: x packed by pack_x (T rows, K columns).
  (func (export "gemm") (param $kind i32) (param $xp i32) (param $T i32) (param $K i32) (param $w i32) (param $ldw i32)
    (param $y i32) (param $ldy i32) (param $o0 i32) (param $o1 i32) (param $pack i32)
    (local $k0 i32) (local $ob i32) (local $no i32) (local $nk i32) (local $t4 i32) (local $wsize i32)
    (if (i32.ge_u (local.get $o0) (local.get $o1)) (then (return)))
    (local.set $t4 (i32.and (i32.add (local.get $T) (i32.const 3)) (i32.const -4)))
    (local.set $wsize (select (i32.const 1) (i32.const 3) (local.get $kind)))
    (loop $kb
      (local.set $nk (call $min (i32.const 256) (i32.sub (local.get $K) (local.get $k0))))
      (local.set $ob (local.get $o0))
      (loop $obs
        (local.set $no (call $min (i32.const 32) (i32.sub (local.get $o1) (local.get $ob))))
        (call $pack_w (local.get $kind)
          (i32.add (local.get $w) (i32.shl (i32.mul (local.get $ob) (local.get $ldw)) (local.get $wsize)))
          (local.get $ldw) (local.get $k0) (local.get $no) (local.get $nk) (local.get $pack))
        (call $block
          (i32.add (local.get $xp) (i32.shl (i32.mul (local.get $k0) (local.get $t4)) (i32.const 3)))
          (local.get $pack) (i32.add (local.get $y) (i32.shl (local.get $ob) (i32.const 3))) (local.get $ldy)
          (local.get $T) (local.get $no) (local.get $nk) (i32.ne (local.get $k0) (i32.const 0)))
        (local.set $ob (i32.add (local.get $ob) (i32.const 32)))
        (br_if $obs (i32.lt_u (local.get $ob) (local.get $o1))))
      (local.set $k0 (i32.add (local.get $k0) (i32.const 256)))
      (br_if $kb (i32.lt_u (local.get $k0) (local.get $K)))))

  ;; One k block: every 4-row group of x against every packed pair of w rows.
  (func $block (param $xp i32) (param $wp i32) (param $y i32) (param $ldy i32) (param $nt i32) (param $no i32) (param $nk i32) (param $add i32)
    (local $t i32) (local $o i32) (local $kbytes i32) (local $xg i32) (local $wq i32)
    ;; bytes per group of x (4 rows) and per pair of w (2 rows) for this block's (even) k count
    (local.set $kbytes (i32.shl (i32.and (i32.add (local.get $nk) (i32.const 1)) (i32.const -2)) (i32.const 3)))
    (local.set $xg (local.get $xp))
    (loop $groups
      (local.set $o (i32.const 0))
      (local.set $wq (local.get $wp))
      (loop $pairs
        (call $tile (local.get $xg) (local.get $wq) (i32.shl (local.get $kbytes) (i32.const 2))
          (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ldy)) (local.get $o)) (i32.const 3)))
          (local.get $ldy) (i32.sub (local.get $nt) (local.get $t)) (i32.sub (local.get $no) (local.get $o)) (local.get $add))
        (local.set $wq (i32.add (local.get $wq) (i32.shl (local.get $kbytes) (i32.const 1))))
        (local.set $o (i32.add (local.get $o) (i32.const 2)))
        (br_if $pairs (i32.lt_u (local.get $o) (local.get $no))))
      (local.set $xg (i32.add (local.get $xg) (i32.shl (local.get $kbytes) (i32.const 2))))
      (local.set $t (i32.add (local.get $t) (i32.const 4)))
      (br_if $groups (i32.lt_u (local.get $t) (local.get $nt)))))

  ;; The 4 x 2 tile: x group at xg (xbytes long: 64 bytes per pair of k), w pair at wq (32 bytes
  ;; per pair of k). Writes rows < rows and columns < cols of it at y (rows ldy apart), inline: a call
  ;; after the loop would make the compiler keep the accumulators in memory inside it.
  (func $tile (param $xg i32) (param $wq i32) (param $xbytes i32) (param $y i32) (param $ldy i32) (param $rows i32) (param $cols i32) (param $add i32)
    (local $end i32) (local $x v128) (local $w0 v128) (local $w1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128) (local $yrow i32) (local $s0 f64) (local $s1 f64)
    (local.set $end (i32.add (local.get $xg) (local.get $xbytes)))
    (loop $k
      (local.set $w0 (v128.load offset=0 (local.get $wq)))
      (local.set $w1 (v128.load offset=16 (local.get $wq)))
      (local.set $x (v128.load offset=0 (local.get $xg)))
      (local.set $c00 (f64x2.add (local.get $c00) (f64x2.mul (local.get $x) (local.get $w0))))
      (local.set $c01 (f64x2.add (local.get $c01) (f64x2.mul (local.get $x) (local.get $w1))))
      (local.set $x (v128.load offset=16 (local.get $xg)))
      (local.set $c10 (f64x2.add (local.get $c10) (f64x2.mul (local.get $x) (local.get $w0))))
      (local.set $c11 (f64x2.add (local.get $c11) (f64x2.mul (local.get $x) (local.get $w1))))
      (local.set $x (v128.load offset=32 (local.get $xg)))
      (local.set $c20 (f64x2.add (local.get $c20) (f64x2.mul (local.get $x) (local.get $w0))))
      (local.set $c21 (f64x2.add (local.get $c21) (f64x2.mul (local.get $x) (local.get $w1))))
      (local.set $x (v128.load offset=48 (local.get $xg)))
      (local.set $c30 (f64x2.add (local.get $c30) (f64x2.mul (local.get $x) (local.get $w0))))
      (local.set $c31 (f64x2.add (local.get $c31) (f64x2.mul (local.get $x) (local.get $w1))))
      (local.set $xg (i32.add (local.get $xg) (i32.const 64)))
      (local.set $wq (i32.add (local.get $wq) (i32.const 32)))
      (br_if $k (i32.lt_u (local.get $xg) (local.get $end))))
    (local.set $yrow (i32.shl (local.get $ldy) (i32.const 3)))
    (local.set $s0 (f64.add (f64x2.extract_lane 0 (local.get $c00)) (f64x2.extract_lane 1 (local.get $c00))))
    (local.set $s1 (f64.add (f64x2.extract_lane 0 (local.get $c01)) (f64x2.extract_lane 1 (local.get $c01))))
    (if (local.get $add) (then
      (local.set $s0 (f64.add (local.get $s0) (f64.load (local.get $y))))
      (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (local.set $s1 (f64.add (local.get $s1) (f64.load offset=8 (local.get $y))))))))
    (f64.store (local.get $y) (local.get $s0))
    (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (f64.store offset=8 (local.get $y) (local.get $s1))))
    (if (i32.le_u (local.get $rows) (i32.const 1)) (then (return)))
    (local.set $y (i32.add (local.get $y) (local.get $yrow)))
    (local.set $s0 (f64.add (f64x2.extract_lane 0 (local.get $c10)) (f64x2.extract_lane 1 (local.get $c10))))
    (local.set $s1 (f64.add (f64x2.extract_lane 0 (local.get $c11)) (f64x2.extract_lane 1 (local.get $c11))))
    (if (local.get $add) (then
      (local.set $s0 (f64.add (local.get $s0) (f64.load (local.get $y))))
      (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (local.set $s1 (f64.add (local.get $s1) (f64.load offset=8 (local.get $y))))))))
    (f64.store (local.get $y) (local.get $s0))
    (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (f64.store offset=8 (local.get $y) (local.get $s1))))
    (if (i32.le_u (local.get $rows) (i32.const 2)) (then (return)))
    (local.set $y (i32.add (local.get $y) (local.get $yrow)))
    (local.set $s0 (f64.add (f64x2.extract_lane 0 (local.get $c20)) (f64x2.extract_lane 1 (local.get $c20))))
    (local.set $s1 (f64.add (f64x2.extract_lane 0 (local.get $c21)) (f64x2.extract_lane 1 (local.get $c21))))
    (if (local.get $add) (then
      (local.set $s0 (f64.add (local.get $s0) (f64.load (local.get $y))))
      (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (local.set $s1 (f64.add (local.get $s1) (f64.load offset=8 (local.get $y))))))))
    (f64.store (local.get $y) (local.get $s0))
    (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (f64.store offset=8 (local.get $y) (local.get $s1))))
    (if (i32.le_u (local.get $rows) (i32.const 3)) (then (return)))
    (local.set $y (i32.add (local.get $y) (local.get $yrow)))
    (local.set $s0 (f64.add (f64x2.extract_lane 0 (local.get $c30)) (f64x2.extract_lane 1 (local.get $c30))))
    (local.set $s1 (f64.add (f64x2.extract_lane 0 (local.get $c31)) (f64x2.extract_lane 1 (local.get $c31))))
    (if (local.get $add) (then
      (local.set $s0 (f64.add (local.get $s0) (f64.load (local.get $y))))
      (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (local.set $s1 (f64.add (local.get $s1) (f64.load offset=8 (local.get $y))))))))
    (f64.store (local.get $y) (local.get $s0))
    (if (i32.gt_u (local.get $cols) (i32.const 1)) (then (f64.store offset=8 (local.get $y) (local.get $s1)))))
)
