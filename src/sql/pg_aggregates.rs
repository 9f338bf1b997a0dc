//! `sum`, `avg`, `variance` and `stddev` with PostgreSQL's result types and
//! exact arithmetic, replacing DataFusion's own in every session.
//!
//! DataFusion's `sum(bigint)` is a bigint that wraps on overflow, its
//! `avg(integer)` a double, and its float sums depend on the order rows
//! arrive in. PostgreSQL's `sum(bigint)` and `avg(integer)` are numeric,
//! and a materialized view must equal its query run as a batch whatever
//! the history of its inputs. So both sides use the accumulators of
//! [`crate::stream::exact`]: integers and decimals in 128 bits (variance in
//! 256), doubles in an exact superaccumulator, results rounded once.
//!
//! | aggregate | smallint, integer | bigint | numeric(p,s) | real, double |
//! |---|---|---|---|---|
//! | sum | bigint | numeric (38,0) | numeric (38,s) | double |
//! | avg | numeric (38,28) | numeric (38,19) | numeric (38,max(s,20)) | double |
//! | var/stddev | double | double | double | double |
//!
//! A result that does not fit raises 22003; numeric results carry
//! PostgreSQL's digits (its division scale, rounded half away from zero)
//! wherever the output scale holds them.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type,
};
use datafusion::common::{Result as DFResult, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::stream::exact::{
    NumState, NumericAgg, NumericFunc, NumericInput, Spread, pg_return_type,
};

/// Registers the aggregates, replacing DataFusion's of the same names.
pub fn register(ctx: &SessionContext) {
    let all = [
        (NumericFunc::Sum, "sum", &[][..]),
        (NumericFunc::Avg, "avg", &["mean"][..]),
        (
            NumericFunc::Spread(Spread::VarSamp),
            "var_samp",
            &["var", "variance", "var_sample"][..],
        ),
        (
            NumericFunc::Spread(Spread::VarPop),
            "var_pop",
            &["var_population"][..],
        ),
        (
            NumericFunc::Spread(Spread::StddevSamp),
            "stddev_samp",
            &["stddev"][..],
        ),
        (
            NumericFunc::Spread(Spread::StddevPop),
            "stddev_pop",
            &[][..],
        ),
    ];
    for (func, name, aliases) in all {
        ctx.register_udaf(AggregateUDF::new_from_impl(PgAggregate {
            func,
            name,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAggregate {
    func: NumericFunc,
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
}

impl AggregateUDFImpl for PgAggregate {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// PostgreSQL's argument types: small integers as integer, every
    /// float as double, decimals as 128-bit decimals.
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        use DataType::*;
        let [t] = arg_types else {
            return plan_err!("function {}() takes one argument", self.name);
        };
        let coerced = match t {
            Int8 | Int16 | Int32 | UInt8 | UInt16 => Int32,
            Int64 | UInt32 => Int64,
            UInt64 => Decimal128(20, 0),
            Float16 | Float32 | Float64 | Null => Float64,
            Decimal32(_, s) | Decimal64(_, s) | Decimal256(_, s) => Decimal128(38, *s),
            Decimal128(p, s) => Decimal128(*p, *s),
            other => {
                return plan_err!(
                    "No function matches the given name and argument types: {}({other})",
                    self.name
                );
            }
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        match arg_types.first().and_then(|t| pg_return_type(self.func, t)) {
            Some(t) => Ok(t),
            None => plan_err!(
                "No function matches the given name and argument types: {}({arg_types:?})",
                self.name
            ),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        let arg = args.expr_fields[0].data_type().clone();
        let input = NumericInput::of(&arg).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("{}({arg}) is not numeric", self.name))
        })?;
        let agg = NumericAgg {
            func: self.func,
            input,
            output: args.return_type().clone(),
        };
        let state = agg.new_state();
        Ok(Box::new(PgAccumulator {
            agg,
            arg,
            state,
            distinct: args.is_distinct.then(HashSet::new),
        }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    /// Many groups at once (GROUP BY in batch queries): one state per
    /// group in a vector, no boxed accumulator per group.
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        let arg = args.expr_fields[0].data_type().clone();
        let input = NumericInput::of(&arg).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("{}({arg}) is not numeric", self.name))
        })?;
        Ok(Box::new(PgGroups {
            agg: NumericAgg {
                func: self.func,
                input,
                output: args.return_type().clone(),
            },
            states: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        if args.is_distinct {
            let arg = args.input_fields[0].data_type().clone();
            return Ok(vec![Arc::new(Field::new_list(
                format_state_name(args.name, "distinct"),
                Field::new_list_field(arg, true),
                true,
            ))]);
        }
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "state"),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
struct PgAccumulator {
    agg: NumericAgg,
    /// The (coerced) argument type.
    arg: DataType,
    state: NumState,
    /// `agg(DISTINCT x)`: the distinct values, folded in at the end.
    distinct: Option<HashSet<ScalarValue>>,
}

impl PgAccumulator {
    fn apply(&mut self, values: &ArrayRef, weight: i64) -> DFResult<()> {
        if let Some(seen) = &mut self.distinct {
            for i in 0..values.len() {
                if values.is_valid(i) {
                    let v = ScalarValue::try_from_array(values, i)?;
                    if weight > 0 {
                        seen.insert(v);
                    } else {
                        seen.remove(&v);
                    }
                }
            }
            return Ok(());
        }
        add_array(&self.agg, &mut self.state, values, weight)
    }
}

/// Adds every non-NULL value of `values` with `weight`.
pub fn add_array(
    agg: &NumericAgg,
    state: &mut NumState,
    values: &ArrayRef,
    weight: i64,
) -> DFResult<()> {
    match agg.input {
        NumericInput::Float => {
            let a = cast(values, &DataType::Float64)?;
            for v in a.as_primitive::<Float64Type>().iter().flatten() {
                NumericAgg::add_float(state, v, weight);
            }
        }
        NumericInput::Decimal { .. } => {
            for v in values.as_primitive::<Decimal128Type>().iter().flatten() {
                NumericAgg::add_int(state, v, weight);
            }
        }
        NumericInput::Int => {
            let a = cast(values, &DataType::Int64)?;
            for v in a.as_primitive::<Int64Type>().iter().flatten() {
                NumericAgg::add_int(state, v as i128, weight);
            }
        }
    }
    Ok(())
}

impl Accumulator for PgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        self.apply(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        self.apply(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        self.distinct.is_none()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DFResult<()> {
        if let Some(seen) = &mut self.distinct {
            let lists = states[0].as_list::<i32>();
            for list in lists.iter().flatten() {
                for i in 0..list.len() {
                    if list.is_valid(i) {
                        seen.insert(ScalarValue::try_from_array(&list, i)?);
                    }
                }
            }
            return Ok(());
        }
        for bytes in states[0].as_binary::<i32>().iter().flatten() {
            let other = NumState::from_bytes(bytes)?;
            self.state.merge(&other)?;
        }
        Ok(())
    }

    fn state(&mut self) -> DFResult<Vec<ScalarValue>> {
        if let Some(seen) = &self.distinct {
            let values: Vec<ScalarValue> = seen.iter().cloned().collect();
            let list = ScalarValue::new_list_nullable(&values, &self.arg);
            return Ok(vec![ScalarValue::List(list)]);
        }
        Ok(vec![ScalarValue::Binary(Some(self.state.to_bytes()))])
    }

    fn evaluate(&mut self) -> DFResult<ScalarValue> {
        if let Some(seen) = &self.distinct {
            let mut state = self.agg.new_state();
            let values: Vec<ScalarValue> = seen.iter().cloned().collect();
            if !values.is_empty() {
                let array = ScalarValue::iter_to_array(values)?;
                add_array(&self.agg, &mut state, &array, 1)?;
            }
            return Ok(self.agg.finish(&state)?);
        }
        Ok(self.agg.finish(&self.state)?)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + match &self.state {
                NumState::Float { .. } => 344,
                NumState::FloatMoments(_) => 688,
                _ => 0,
            }
            + self.distinct.as_ref().map_or(0, |s| s.len() * 48)
    }
}

/// The states of every group of a batch aggregation.
struct PgGroups {
    agg: NumericAgg,
    states: Vec<NumState>,
}

impl PgGroups {
    fn grow(&mut self, total: usize) {
        while self.states.len() < total {
            self.states.push(self.agg.new_state());
        }
    }
}

impl GroupsAccumulator for PgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&datafusion::arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.grow(total_num_groups);
        let keep = |i: usize| opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
        let values = &values[0];
        match self.agg.input {
            NumericInput::Float => {
                let a = cast(values, &DataType::Float64)?;
                let a = a.as_primitive::<Float64Type>();
                for (i, &g) in group_indices.iter().enumerate() {
                    if a.is_valid(i) && keep(i) {
                        NumericAgg::add_float(&mut self.states[g], a.value(i), 1);
                    }
                }
            }
            NumericInput::Decimal { .. } => {
                let a = values.as_primitive::<Decimal128Type>();
                for (i, &g) in group_indices.iter().enumerate() {
                    if a.is_valid(i) && keep(i) {
                        NumericAgg::add_int(&mut self.states[g], a.value(i), 1);
                    }
                }
            }
            NumericInput::Int => {
                let a = cast(values, &DataType::Int64)?;
                let a = a.as_primitive::<Int64Type>();
                for (i, &g) in group_indices.iter().enumerate() {
                    if a.is_valid(i) && keep(i) {
                        NumericAgg::add_int(&mut self.states[g], a.value(i) as i128, 1);
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        let states = emit_to.take_needed(&mut self.states);
        let values = states
            .iter()
            .map(|st| self.agg.finish(st))
            .collect::<crate::Result<Vec<ScalarValue>>>()?;
        if values.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(&self.agg.output));
        }
        ScalarValue::iter_to_array(values)
    }

    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        let states = emit_to.take_needed(&mut self.states);
        let bytes: Vec<Vec<u8>> = states.iter().map(NumState::to_bytes).collect();
        Ok(vec![Arc::new(
            datafusion::arrow::array::BinaryArray::from_iter_values(bytes.iter()),
        )])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&datafusion::arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.grow(total_num_groups);
        let partials = values[0].as_binary::<i32>();
        for (i, &g) in group_indices.iter().enumerate() {
            if partials.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                let other = NumState::from_bytes(partials.value(i))?;
                self.states[g].merge(&other)?;
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<NumState>()
            + self
                .states
                .iter()
                .map(|s| match s {
                    NumState::Float { .. } => 344,
                    NumState::FloatMoments(_) => 688,
                    _ => 0,
                })
                .sum::<usize>()
    }
}
