//! `Split`: a train/val/test assignment of a dataset's cells, with the
//! parts as `Dataset`s (built on first use and cached). A split that knows
//! how it was made (its `SplitSpec`) of a dataset that knows where it came
//! from gives parts with a provenance, so a trainer records the run's data
//! set-up; `Split::from_run(dir)` reopens the split a run trained on.

use std::cell::RefCell;
use std::rc::Rc;

use rhai::plugin::*;
use rhai::Array;

use super::convert::{path_arg, string_array};
use super::dataset::DatasetHandle;
use super::error::{guard, invalid, to_rhai, RhaiResult};
use crate::data::{Dataset, Part, Split, SplitSpec, Task};
use crate::train::run_dir;

/// A split handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct SplitHandle(Rc<SplitInner>);

#[derive(Debug)]
struct SplitInner {
    data: Rc<Dataset>,
    split: Split,
    task: String,
    /// How the split was made (`None`: not reproducibly).
    spec: Option<SplitSpec>,
    parts: RefCell<[Option<DatasetHandle>; 3]>,
}

impl SplitHandle {
    /// Wraps a split of `data` made for `task` as `spec` describes.
    pub fn new(
        data: Rc<Dataset>,
        split: Split,
        task: String,
        spec: Option<SplitSpec>,
    ) -> SplitHandle {
        SplitHandle(Rc::new(SplitInner {
            data,
            split,
            task,
            spec,
            parts: RefCell::new([None, None, None]),
        }))
    }

    /// The cells of `part` as a dataset (cached).
    pub fn part(&self, part: Part) -> RhaiResult<DatasetHandle> {
        let i = match part {
            Part::Train => 0,
            Part::Val => 1,
            Part::Test => 2,
        };
        if let Some(d) = self.0.parts.borrow().get(i).cloned().flatten() {
            return Ok(d);
        }
        let rows = self.0.split.cells(part);
        if rows.is_empty() {
            return Err(invalid(
                "split part",
                format!("the {} part is empty", part.as_str()),
            ));
        }
        let d = self.0.data.clone();
        let mut ds = guard(|| d.subset(&rows))?;
        ds.source = Some(std::path::PathBuf::from(format!(
            "{} [{}]",
            self.0.data.source_name(),
            part.as_str()
        )));
        ds.provenance = match (&self.0.data.provenance, &self.0.spec) {
            (Some(p), Some(s)) => p.split_part(s, part),
            _ => None,
        };
        let h = DatasetHandle::new(ds);
        if let Some(slot) = self.0.parts.borrow_mut().get_mut(i) {
            *slot = Some(h.clone());
        }
        Ok(h)
    }

    /// The core split and its dataset.
    pub fn inner(&self) -> (&Rc<Dataset>, &Split) {
        (&self.0.data, &self.0.split)
    }
}

#[export_module]
pub mod split_api {
    use super::*;

    /// A train/val/test split of a dataset (from `data.split(task, seed)`).
    /// ```rhai
    /// let split = data.split("combination", 42);
    /// print(split);
    /// let test = split.test;
    /// ```
    pub type Split = SplitHandle;

    /// The training cells (held-in units and half the controls).
    /// ```rhai
    /// let train = split.train;
    /// ```
    #[rhai_fn(get = "train", pure, return_raw)]
    pub fn train(s: &mut Split) -> RhaiResult<DatasetHandle> {
        s.part(Part::Train)
    }

    /// The validation cells.
    /// ```rhai
    /// let val = split.val;
    /// ```
    #[rhai_fn(get = "val", pure, return_raw)]
    pub fn val(s: &mut Split) -> RhaiResult<DatasetHandle> {
        s.part(Part::Val)
    }

    /// The test cells (held-out units and a quarter of the controls).
    /// ```rhai
    /// let test = split.test;
    /// ```
    #[rhai_fn(get = "test", pure, return_raw)]
    pub fn test(s: &mut Split) -> RhaiResult<DatasetHandle> {
        s.part(Part::Test)
    }

    /// A part by name: `"train"`, `"val"` or `"test"`.
    /// ```rhai
    /// let test = split.part("test");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn part(s: &mut Split, name: &str) -> RhaiResult<DatasetHandle> {
        s.part(Part::parse(name).map_err(to_rhai)?)
    }

    /// The task the split was made for.
    /// ```rhai
    /// split.task
    /// ```
    #[rhai_fn(get = "task", pure)]
    pub fn task(s: &mut Split) -> String {
        s.0.task.clone()
    }

    /// Names (`covariates/label`) of the units held out in a part.
    /// ```rhai
    /// split.held_out("test")
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn held_out(s: &mut Split, part: &str) -> RhaiResult<Array> {
        let p = Part::parse(part).map_err(to_rhai)?;
        let sum = s.0.split.summary(&s.0.data);
        Ok(string_array(
            sum.held_out.get(p.as_str()).cloned().unwrap_or_default(),
        ))
    }

    /// Writes the split as CSV (`cell,<columns>,split`) and returns the path.
    /// ```rhai
    /// split.save("out/split.csv");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(s: &mut Split, path: &str) -> RhaiResult<String> {
        let p = path_arg("split file", path)?;
        let inner = s.0.clone();
        guard(|| inner.split.write_csv(&p, &inner.data))?;
        Ok(path.to_string())
    }

    /// Units and cells per part, and the held-out units.
    /// ```rhai
    /// print(split);
    /// ```
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(s: &mut Split) -> String {
        format!(
            "Split ({}) of {}\n{}",
            s.0.task,
            s.0.data.source_name(),
            s.0.split.summary(&s.0.data)
        )
        .trim_end()
        .to_string()
    }
}

/// What a script does about a run with no recorded data set.
pub const FROM_FILE: &str = "load its data with Dataset::load and split it as the run did";

/// The name of a split's task as scripts show it.
pub fn task_label(spec: &SplitSpec) -> String {
    match spec {
        SplitSpec::None => "none".into(),
        SplitSpec::File { path, .. } => format!("file {}", path.display()),
        SplitSpec::Task { task, .. } => match task {
            Task::CovariateTransfer => "covariate-transfer".into(),
            Task::Combination => "combination".into(),
            Task::UnseenPerturbation => "unseen-perturbation".into(),
        },
    }
}

#[export_module]
pub mod split_static {
    use super::*;

    /// The split a training run used, rebuilt from its folder's data
    /// set-up (`data.json`, written by `primeflow train` or a trainer with
    /// a checkpoint folder): the same file, columns, filters and split, so
    /// `.train` are the run's training cells and `.test` its held-out units.
    /// ```rhai
    /// let split = Split::from_run("out/run1");
    /// let model = trainer.resume("out/run1");
    /// trainer.fit(model, split.train);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn from_run(dir: &str) -> RhaiResult<SplitHandle> {
        let p = path_arg("run folder", dir)?;
        let spec = guard(|| run_dir::require_data_spec("run folder", &p, FROM_FILE))?;
        if spec.split == SplitSpec::None {
            return Err(invalid(
                "run folder",
                format!(
                    "the run in {dir} trained on every cell of {} (no split); use Dataset::from_run",
                    spec.path.display()
                ),
            ));
        }
        let (ds, split) = guard(|| {
            let ds = spec.load()?;
            let split = spec.split(&ds)?;
            Ok((ds, split))
        })?;
        let split = split.ok_or_else(|| invalid("run folder", "its data set-up has no split"))?;
        Ok(SplitHandle::new(
            Rc::new(ds),
            split,
            task_label(&spec.split),
            Some(spec.split.clone()),
        ))
    }
}

/// Registers `Split` and the `Split::` namespace.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<SplitHandle>("Split");
    engine.register_global_module(exported_module!(split_api).into());
    engine.register_static_module("Split", exported_module!(split_static).into());
}
