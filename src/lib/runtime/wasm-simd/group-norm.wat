;; The fused GroupNorm block on the wasm backend, in WebAssembly SIMD (four floats a lane).
;; It works in tfjs's own heap (the memory is imported), on one image of [H, W, C] at a time; the
;; per-group arithmetic (C numbers) is in ../wasm-group-norm.ts. Pointers are byte offsets, C is a
;; multiple of 4. `npm run build-wasm` assembles this file into group-norm-wasm.ts (tested equal).
(module
  (import "env" "memory" (memory MEMORY_LIMITS)) ;; "1" or, threaded, "1 65536 shared"

  ;; out[c] = sum over the hw pixels of x[p, c]
  (func (export "sums") (param $x i32) (param $out i32) (param $hw i32) (param $c i32)
    (local $i i32) (local $row i32) (local $end i32)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    (local.set $i (i32.const 0))
    (block $zeroed (loop $zero
      (br_if $zeroed (i32.ge_u (local.get $i) (local.get $row)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (v128.const i32x4 0 0 0 0))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $zero)))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $hw) (local.get $row))))
    (block $done (loop $pixel
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $i (i32.const 0))
      (block $row_done (loop $lane
        (br_if $row_done (i32.ge_u (local.get $i) (local.get $row)))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $out) (local.get $i)))
            (v128.load (i32.add (local.get $x) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $lane)))
      (local.set $x (i32.add (local.get $x) (local.get $row)))
      (br $pixel))))

  ;; out[c] = sum over the pixels of (x[p, c] - mean[c])^2
  (func (export "squares") (param $x i32) (param $mean i32) (param $out i32) (param $hw i32)
    (param $c i32)
    (local $i i32) (local $row i32) (local $end i32) (local $d v128)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    (local.set $i (i32.const 0))
    (block $zeroed (loop $zero
      (br_if $zeroed (i32.ge_u (local.get $i) (local.get $row)))
      (v128.store (i32.add (local.get $out) (local.get $i)) (v128.const i32x4 0 0 0 0))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $zero)))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $hw) (local.get $row))))
    (block $done (loop $pixel
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $i (i32.const 0))
      (block $row_done (loop $lane
        (br_if $row_done (i32.ge_u (local.get $i) (local.get $row)))
        (local.set $d (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $i)))
          (v128.load (i32.add (local.get $mean) (local.get $i)))))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $out) (local.get $i)))
            (f32x4.mul (local.get $d) (local.get $d))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $lane)))
      (local.set $x (i32.add (local.get $x) (local.get $row)))
      (br $pixel))))

  ;; z = relu(x scale + shift) (+ skip) (+ cond) (+ skip again), written once or, upsampled, to
  ;; the 2x2 block of pixel (h, w). flags: 1 skip, 2 cond, 4 twice, 8 upsample. skip is [H, W, C];
  ;; cond, scale and shift are [C].
  (func (export "apply") (param $x i32) (param $scale i32) (param $shift i32) (param $skip i32)
    (param $cond i32) (param $out i32) (param $h i32) (param $w i32) (param $c i32)
    (param $flags i32)
    (local $row i32) (local $i i32) (local $py i32) (local $px i32) (local $o i32)
    (local $z v128) (local $s v128) (local $orow i32)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    ;; bytes from one output row to the next: 2W C floats when upsampled
    (local.set $orow (i32.mul (local.get $row) (i32.shl (local.get $w) (i32.const 1))))
    (local.set $py (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $py) (local.get $h)))
      (local.set $px (i32.const 0))
      (block $cols_done (loop $cols
        (br_if $cols_done (i32.ge_u (local.get $px) (local.get $w)))
        (local.set $o (select
          (i32.add (local.get $out) (i32.add (i32.mul (local.get $py) (i32.shl (local.get $orow)
            (i32.const 1))) (i32.mul (local.get $px) (i32.shl (local.get $row) (i32.const 1)))))
          (local.get $out)
          (i32.and (local.get $flags) (i32.const 8))))
        (local.set $i (i32.const 0))
        (block $lanes_done (loop $lanes
          (br_if $lanes_done (i32.ge_u (local.get $i) (local.get $row)))
          (local.set $z (f32x4.max (v128.const f32x4 0 0 0 0)
            (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i)))
              (v128.load (i32.add (local.get $scale) (local.get $i))))
              (v128.load (i32.add (local.get $shift) (local.get $i))))))
          (if (i32.and (local.get $flags) (i32.const 1)) (then
            (local.set $s (v128.load (i32.add (local.get $skip) (local.get $i))))
            (local.set $z (f32x4.add (local.get $z) (local.get $s)))))
          (if (i32.and (local.get $flags) (i32.const 2)) (then
            (local.set $z (f32x4.add (local.get $z)
              (v128.load (i32.add (local.get $cond) (local.get $i)))))))
          (if (i32.and (local.get $flags) (i32.const 4)) (then
            (local.set $z (f32x4.add (local.get $z) (local.get $s)))))
          (v128.store (i32.add (local.get $o) (local.get $i)) (local.get $z))
          (if (i32.and (local.get $flags) (i32.const 8)) (then
            (v128.store (i32.add (i32.add (local.get $o) (local.get $row)) (local.get $i))
              (local.get $z))
            (v128.store (i32.add (i32.add (local.get $o) (local.get $orow)) (local.get $i))
              (local.get $z))
            (v128.store (i32.add (i32.add (i32.add (local.get $o) (local.get $orow))
              (local.get $row)) (local.get $i)) (local.get $z))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $lanes)))
        (local.set $x (i32.add (local.get $x) (local.get $row)))
        (local.set $skip (i32.add (local.get $skip) (local.get $row)))
        (if (i32.eqz (i32.and (local.get $flags) (i32.const 8))) (then
          (local.set $out (i32.add (local.get $out) (local.get $row)))))
        (local.set $px (i32.add (local.get $px) (i32.const 1)))
        (br $cols)))
      (local.set $py (i32.add (local.get $py) (i32.const 1)))
      (br $rows))))

  ;; out[h, w, c] = the sum of dy's 2x2 block at (2h, 2w): nearest upsampling's gradient, [H, W, C]
  (func (export "downsum") (param $dy i32) (param $out i32) (param $h i32) (param $w i32)
    (param $c i32)
    (local $row i32) (local $drow i32) (local $i i32) (local $py i32) (local $px i32)
    (local $d i32)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    (local.set $drow (i32.mul (local.get $row) (i32.shl (local.get $w) (i32.const 1))))
    (local.set $py (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $py) (local.get $h)))
      (local.set $px (i32.const 0))
      (block $cols_done (loop $cols
        (br_if $cols_done (i32.ge_u (local.get $px) (local.get $w)))
        (local.set $d (i32.add (local.get $dy) (i32.add (i32.mul (local.get $py)
          (i32.shl (local.get $drow) (i32.const 1))) (i32.mul (local.get $px)
          (i32.shl (local.get $row) (i32.const 1))))))
        (local.set $i (i32.const 0))
        (block $lanes_done (loop $lanes
          (br_if $lanes_done (i32.ge_u (local.get $i) (local.get $row)))
          (v128.store (i32.add (local.get $out) (local.get $i))
            (f32x4.add
              (f32x4.add (v128.load (i32.add (local.get $d) (local.get $i)))
                (v128.load (i32.add (i32.add (local.get $d) (local.get $row)) (local.get $i))))
              (f32x4.add
                (v128.load (i32.add (i32.add (local.get $d) (local.get $drow)) (local.get $i)))
                (v128.load (i32.add (i32.add (i32.add (local.get $d) (local.get $drow))
                  (local.get $row)) (local.get $i))))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $lanes)))
        (local.set $out (i32.add (local.get $out) (local.get $row)))
        (local.set $px (i32.add (local.get $px) (i32.const 1)))
        (br $cols)))
      (local.set $py (i32.add (local.get $py) (i32.const 1)))
      (br $rows))))

  ;; sumDn[c] = sum of dn, sumDnn[c] = sum of dn n over the pixels, n = x scale + shift,
  ;; dn = dz where n > 0, else 0
  (func (export "gradSums") (param $x i32) (param $dz i32) (param $scale i32) (param $shift i32)
    (param $sumDn i32) (param $sumDnn i32) (param $hw i32) (param $c i32)
    (local $i i32) (local $row i32) (local $end i32) (local $n v128) (local $dn v128)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    (local.set $i (i32.const 0))
    (block $zeroed (loop $zero
      (br_if $zeroed (i32.ge_u (local.get $i) (local.get $row)))
      (v128.store (i32.add (local.get $sumDn) (local.get $i)) (v128.const i32x4 0 0 0 0))
      (v128.store (i32.add (local.get $sumDnn) (local.get $i)) (v128.const i32x4 0 0 0 0))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $zero)))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $hw) (local.get $row))))
    (block $done (loop $pixel
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $i (i32.const 0))
      (block $row_done (loop $lane
        (br_if $row_done (i32.ge_u (local.get $i) (local.get $row)))
        (local.set $n (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i)))
          (v128.load (i32.add (local.get $scale) (local.get $i))))
          (v128.load (i32.add (local.get $shift) (local.get $i)))))
        (local.set $dn (v128.and (v128.load (i32.add (local.get $dz) (local.get $i)))
          (f32x4.gt (local.get $n) (v128.const f32x4 0 0 0 0))))
        (v128.store (i32.add (local.get $sumDn) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $sumDn) (local.get $i))) (local.get $dn)))
        (v128.store (i32.add (local.get $sumDnn) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $sumDnn) (local.get $i)))
            (f32x4.mul (local.get $dn) (local.get $n))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $lane)))
      (local.set $x (i32.add (local.get $x) (local.get $row)))
      (local.set $dz (i32.add (local.get $dz) (local.get $row)))
      (br $pixel))))

  ;; dx = scale (dn - a - n b): a[c] the mean of dn over c's group, b[c] the mean of dn n
  (func (export "gradApply") (param $x i32) (param $dz i32) (param $scale i32) (param $shift i32)
    (param $a i32) (param $b i32) (param $dx i32) (param $hw i32) (param $c i32)
    (local $i i32) (local $row i32) (local $end i32) (local $n v128) (local $dn v128)
    (local.set $row (i32.mul (local.get $c) (i32.const 4)))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $hw) (local.get $row))))
    (block $done (loop $pixel
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $i (i32.const 0))
      (block $row_done (loop $lane
        (br_if $row_done (i32.ge_u (local.get $i) (local.get $row)))
        (local.set $n (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i)))
          (v128.load (i32.add (local.get $scale) (local.get $i))))
          (v128.load (i32.add (local.get $shift) (local.get $i)))))
        (local.set $dn (v128.and (v128.load (i32.add (local.get $dz) (local.get $i)))
          (f32x4.gt (local.get $n) (v128.const f32x4 0 0 0 0))))
        (v128.store (i32.add (local.get $dx) (local.get $i))
          (f32x4.mul (v128.load (i32.add (local.get $scale) (local.get $i)))
            (f32x4.sub (f32x4.sub (local.get $dn) (v128.load (i32.add (local.get $a)
              (local.get $i)))) (f32x4.mul (local.get $n) (v128.load (i32.add (local.get $b)
              (local.get $i)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $lane)))
      (local.set $x (i32.add (local.get $x) (local.get $row)))
      (local.set $dz (i32.add (local.get $dz) (local.get $row)))
      (local.set $dx (i32.add (local.get $dx) (local.get $row)))
      (br $pixel))))
)
