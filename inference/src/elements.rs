//! Borrowing the elements of a contiguous CPU tensor as a Rust slice, for the CPU loops of the
//! sliding window and of mirroring TTA.

use tch::kind::Element;
use tch::{Device, TchError, Tensor};

use crate::InferenceError;

/// The elements of a contiguous CPU tensor of kind `T`, borrowed.
///
/// # Safety
/// tch handles share storage (`shallow_clone`, views, and ops such as `to_kind` that return
/// their input when nothing changes), so borrowing `t` does not stop another handle from
/// writing the same storage. The caller guarantees that no handle writes `t`'s storage while
/// the returned slice lives.
///
/// # Errors
/// [`InferenceError::Torch`] (a kind fault) unless `t` is a defined, contiguous CPU tensor of
/// kind `T`.
pub(crate) unsafe fn cpu_elements<T: Element>(t: &Tensor) -> Result<&[T], InferenceError> {
    let numel = checked_cpu_numel::<T>(t)?;
    if numel == 0 {
        return Ok(&[]);
    }
    // SAFETY: `t` is a defined, contiguous CPU tensor of `T` (checked above), so its data
    // pointer is aligned and valid for `numel` elements, and its storage lives at least as long
    // as the borrow of `t`; the caller guarantees that no handle writes it meanwhile.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, numel) })
}

/// The elements of a contiguous CPU tensor of kind `T`, mutably borrowed.
///
/// # Safety
/// As [`cpu_elements`], and more: the caller guarantees that no other handle of `t`'s storage
/// reads or writes it while the returned slice lives (in practice, `t` is a tensor the caller
/// allocated and handed to no one).
///
/// # Errors
/// As [`cpu_elements`].
pub(crate) unsafe fn cpu_elements_mut<T: Element>(
    t: &mut Tensor,
) -> Result<&mut [T], InferenceError> {
    let numel = checked_cpu_numel::<T>(t)?;
    if numel == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `cpu_elements`; the caller guarantees that no other handle uses the
    // storage while the slice lives, so the slice is its only access.
    Ok(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, numel) })
}

/// The number of elements of `t` after checking that it is a defined, contiguous CPU tensor of
/// kind `T`.
fn checked_cpu_numel<T: Element>(t: &Tensor) -> Result<usize, InferenceError> {
    if !t.defined() {
        let fault = "an undefined tensor has no elements".to_string();
        return Err(InferenceError::Torch(TchError::Kind(fault)));
    }
    let kind = t.f_kind()?;
    if t.device() != Device::Cpu || !t.is_contiguous() || kind != T::KIND {
        return Err(InferenceError::Torch(TchError::Kind(format!(
            "expected a contiguous CPU tensor of {:?}, found {kind:?} on {:?} (contiguous: {})",
            T::KIND,
            t.device(),
            t.is_contiguous()
        ))));
    }
    Ok(t.numel())
}

#[cfg(test)]
mod tests {
    use half::f16;
    use tch::Kind;

    use super::*;

    #[test]
    fn elements_are_only_lent_from_contiguous_cpu_tensors_of_their_kind() {
        let t = Tensor::arange(12, (Kind::Float, Device::Cpu)).reshape([3, 4]);
        // SAFETY: `t` and its transpose are this test's own; nothing writes them while the
        // slices live.
        unsafe {
            assert_eq!(cpu_elements::<f32>(&t).unwrap().len(), 12);
            assert!(cpu_elements::<f16>(&t).is_err());
            assert!(cpu_elements::<f32>(&t.transpose(0, 1)).is_err());
        }
        let mut t = t;
        // SAFETY: `t` is the only handle of its storage (the transpose above is dropped).
        unsafe { cpu_elements_mut::<f32>(&mut t).unwrap()[5] = 42.0 };
        assert_eq!(t.double_value(&[1, 1]), 42.0);
    }
}
