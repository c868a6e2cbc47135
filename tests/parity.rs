//! tract against onnxruntime on identical input tensors (tests/fixtures/tensors, made by
//! scripts/models/make-fixtures.py, which also recorded onnxruntime's outputs).

use crate::util::*;

fn check(model_key: &str, backbone: &glance::Backbone, min_cosine: f64) {
    let tensors = reference()["tensors"].as_object().expect("tensors");
    assert!(tensors.len() >= 3, "fixture has too few tensors");
    for (name, models) in tensors {
        let expected = &models[model_key];
        let out = backbone
            .run(tensor_of(&fixture(&format!("tensors/{name}"))))
            .expect("runs");
        let c = cosine(&out.features, &floats(&expected["features"]));
        assert!(
            c >= min_cosine,
            "{name} {model_key}: feature cosine {c} < {min_cosine}"
        );
        let logits = out.logits.expect("logits");
        let ref_logits = floats(&expected["logits"]);
        assert_eq!(
            argmax(&logits),
            argmax(&ref_logits),
            "{name} {model_key}: top-1 differs from onnxruntime"
        );
        let lc = cosine(&logits, &ref_logits);
        assert!(lc >= min_cosine, "{name} {model_key}: logits cosine {lc}");
    }
}

#[test]
fn fp32_features_match_onnxruntime() {
    check("efficientnet-lite0-fp32", fp32(), 0.9999);
}

#[test]
fn int8_weight_features_match_onnxruntime() {
    check("efficientnet-lite0-int8w", int8w(), 0.9999);
}

/// Lite0 multi-level (`fit --backbone lite0-ml`): all 1776 features and the logits match
/// onnxruntime, and the first 1280 are Lite0's own.
#[test]
fn multi_level_lite0_matches_onnxruntime_and_begins_with_lite0s_features() {
    let ml = glance::Backbone::load(
        &glance::ModelSource::File(model_file("efficientnet_lite0ml_int8w.onnx")),
        &Default::default(),
    )
    .expect("loads");
    assert_eq!(ml.identity().feature_dim, 1776);
    check("efficientnet-lite0ml-int8w", &ml, 0.9999);
    for name in reference()["tensors"].as_object().expect("tensors").keys() {
        let t = tensor_of(&fixture(&format!("tensors/{name}")));
        let (a, b) = (
            ml.run(t.clone()).expect("runs"),
            fp32().run(t).expect("runs"),
        );
        assert_eq!(a.features.len(), 1776);
        let c = cosine(&a.features[..1280], &b.features);
        assert!(
            c >= 0.99,
            "{name}: first 1280 against Lite0 fp32: cosine {c}"
        );
        // The tapped blocks end in a linear projection (no ReLU6): some pooled values are
        // negative, which the head's never are.
        assert!(a.features[1280..].iter().any(|&v| v < -0.01), "{name}");
    }
}

#[test]
fn features_are_pooled_relu6_activations() {
    // The pooled output of ReLU6 activations lies in [0, 6]; Swish (the package's set_swish trap)
    // would produce negative values.
    let out = fp32()
        .run(tensor_of(&fixture("tensors/coffee.png")))
        .expect("runs");
    assert_eq!(out.features.len(), 1280);
    assert!(out.features.iter().all(|&v| (0.0..=6.0).contains(&v)));
    assert!(out.features.iter().any(|&v| v > 0.5));
}

#[test]
fn centre_crop_resize_matches_pil() {
    // tests/fixtures/tensors/X.png is PIL's crop + bilinear resize of photos/X (make-fixtures.py).
    // glance's resize of the same photo must give nearly the same pixels: a wrong crop box or
    // filter moves the mean difference far beyond this.
    let spec = int8w().preprocess_spec();
    for name in ["chelsea", "coffee", "china"] {
        let photo_name = if name == "china" {
            "china.jpg".to_string()
        } else {
            format!("{name}.png")
        };
        let photo = glance::decode_file(
            &fixture(&format!("photos/{photo_name}")),
            Default::default(),
        )
        .expect("decodes");
        let ours = glance::resize(&photo, spec);
        let pil = glance::decode_file(&fixture(&format!("tensors/{name}.png")), Default::default())
            .expect("decodes");
        assert_eq!(ours.dimensions(), pil.dimensions());
        let diff = crate::util::mean_abs_diff(ours.as_raw(), pil.as_raw());
        eprintln!("{name}: mean |glance - PIL| = {diff:.3} levels");
        assert!(diff < 1.0, "{name}: mean abs difference {diff:.3} levels");
    }
}

/// Lite1 and Lite2, fp32 and int8 weights, against onnxruntime on their own tensors
/// (tests/fixtures/tensors-lite1|2: the fixture photos at 240² and 260², made by
/// scripts/models/make-fixtures.py): the backbones `glance-host fit --backbone` offers.
#[test]
fn lite1_and_lite2_match_onnxruntime() {
    let variants = reference()["variants"].as_object().expect("variants");
    assert_eq!(
        variants.keys().collect::<Vec<_>>(),
        ["lite1", "lite2"],
        "fixture variants"
    );
    for (v, rec) in variants {
        let side = rec["size"].as_u64().expect("size") as u32;
        for form in ["fp32", "int8w"] {
            let key = format!("efficientnet-{v}-{form}");
            let backbone = glance::Backbone::load(
                &glance::ModelSource::File(model_file(&format!("efficientnet_{v}_{form}.onnx"))),
                &Default::default(),
            )
            .expect("loads");
            let spec = backbone.preprocess_spec();
            assert_eq!((spec.width, spec.height), (side, side), "{key}");
            let tensors = rec["tensors"].as_object().expect("tensors");
            assert!(tensors.len() >= 3, "{v}: too few tensors");
            for (name, models) in tensors {
                let image = glance::decode_file(
                    &fixture(&format!("tensors-{v}/{name}")),
                    Default::default(),
                )
                .expect("decodes");
                let out = backbone
                    .run(glance::normalize(&image, spec).expect("tensor"))
                    .expect("runs");
                let expected = &models[&key];
                let c = cosine(&out.features, &floats(&expected["features"]));
                assert!(c >= 0.9999, "{name} {key}: feature cosine {c}");
                let logits = out.logits.expect("logits");
                assert_eq!(
                    argmax(&logits),
                    argmax(&floats(&expected["logits"])),
                    "{name} {key}: top-1 differs from onnxruntime"
                );
            }
        }
    }
}
