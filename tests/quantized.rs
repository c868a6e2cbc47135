//! The shipped int8-weight backbone against the fp32 reference, both run by tract.
//! The export script measures the same on 222 held-out inputs (models/quantization.json).

use crate::util::*;

#[test]
fn int8_weights_agree_with_fp32() {
    let tensors = reference()["tensors"].as_object().expect("tensors");
    for name in tensors.keys() {
        let t = tensor_of(&fixture(&format!("tensors/{name}")));
        let a = fp32().run(t.clone()).expect("fp32 runs");
        let b = int8w().run(t).expect("int8w runs");
        let c = cosine(&a.features, &b.features);
        assert!(c >= 0.99, "{name}: int8w/fp32 feature cosine {c}");
        let (la, lb) = (a.logits.expect("logits"), b.logits.expect("logits"));
        assert_eq!(argmax(&la), argmax(&lb), "{name}: top-1 differs");
    }
}

#[test]
fn recorded_quantization_figures_hold() {
    // The figures shown to users (BENCHMARKS.md, README) come from this file; keep them honest.
    let text = std::fs::read_to_string(model_file("quantization.json")).expect("present");
    let q: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let variants = q.as_object().expect("one object a backbone");
    assert_eq!(
        variants.keys().collect::<Vec<_>>(),
        [
            "efficientnet-lite0",
            "efficientnet-lite0ml",
            "efficientnet-lite1",
            "efficientnet-lite2"
        ]
    );
    for (name, q) in variants {
        let mean = q["int8w"]["photos"]["feature_cosine_mean"]
            .as_f64()
            .expect("number");
        assert!(mean >= 0.995, "{name} int8w mean feature cosine {mean}");
        let top5 = q["int8w"]["photos"]["top1_in_top5"]
            .as_f64()
            .expect("number");
        assert!(top5 >= 0.97, "{name} int8w fp32-top1-in-top5 {top5}");
    }
}

#[test]
fn int8_file_is_about_four_times_smaller() {
    for v in ["lite0", "lite1", "lite2"] {
        let small = std::fs::metadata(model_file(&format!("efficientnet_{v}_int8w.onnx")))
            .expect("present");
        let big =
            std::fs::metadata(model_file(&format!("efficientnet_{v}_fp32.onnx"))).expect("present");
        let ratio = big.len() as f64 / small.len() as f64;
        assert!(ratio > 3.5, "{v}: fp32/int8w size ratio {ratio}");
    }
}
