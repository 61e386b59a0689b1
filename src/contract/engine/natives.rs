//! The host's native functions, as the sandbox bootstrap wires them into the built-in
//! modules, `emit` and `tx`. Each checks what is running (restricted mode, determinism,
//! whether a transactor is open) before it touches the host or the call's state.

use super::{Mode, Shared};
use crate::codec::Value;
use crate::contract::convert::{js_string, to_js};
use crate::contract::host::ListOptions;
use crate::contract::tx::{is_hex_key, Action};
use rquickjs::{qjs, Ctx, Exception, Function, Object as JsObject, Value as JsValue};
use std::rc::Rc;

pub(super) fn string_arg<'js>(ctx: &Ctx<'js>, v: &JsValue<'js>) -> Option<String> {
    if v.is_string() {
        js_string(ctx, v).ok()
    } else {
        None
    }
}

fn list_options(v: &JsValue<'_>) -> rquickjs::Result<ListOptions> {
    let mut o = ListOptions::default();
    let Some(obj) = v.as_object() else {
        return Ok(o);
    };
    let count = |v: JsValue<'_>| -> usize {
        v.as_number()
            .filter(|n| n.is_finite() && *n > 0.0)
            .map_or(0, |n| n as usize)
    };
    let reverse: JsValue = obj.get("reverse")?;
    o.reverse = truthy(&reverse);
    o.offset = count(obj.get("offset")?);
    o.limit = count(obj.get("limit")?);
    Ok(o)
}

fn truthy(v: &JsValue<'_>) -> bool {
    // SAFETY: JS_ToBool only reads a live value of this context.
    unsafe { qjs::JS_ToBool(v.ctx().as_raw().as_ptr(), v.as_raw()) > 0 }
}

fn uuid_v4() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The host functions the bootstrap wires into the built-in modules.
pub(super) fn natives<'js>(ctx: &Ctx<'js>, shared: &Rc<Shared>) -> rquickjs::Result<JsObject<'js>> {
    let o = JsObject::new(ctx.clone())?;

    let s = shared.clone();
    o.set(
        "nondeterministic",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, what: JsValue<'js>| {
            let what = string_arg(&ctx, &what).unwrap_or_else(|| "this".into());
            s.refuse_nondeterministic(&ctx, &what)
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "genUUID",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>| -> rquickjs::Result<String> {
                s.refuse_nondeterministic(&ctx, "genUUID()")?;
                uuid_v4()
                    .map_err(|e| Exception::throw_internal(&ctx, &format!("no randomness: {e}")))
            },
        )?,
    )?;

    let s = shared.clone();
    o.set(
        "localOplog",
        Function::new(ctx.clone(), move || -> Option<String> {
            s.host.use_host(|h| h.local_oplog()).flatten()
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "indexPubkey",
        Function::new(ctx.clone(), move || -> Option<String> {
            s.host.use_host(|h| h.index_pubkey()).flatten()
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "indexGet",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, path: JsValue<'js>| {
            let Some(path) = string_arg(&ctx, &path) else {
                return Err(Exception::throw_type(
                    &ctx,
                    "index.get(path): path must be a string",
                ));
            };
            match s.host.use_host(|h| h.get(&path)) {
                None => Err(Exception::throw_internal(&ctx, "no host is attached")),
                Some(Ok(Some(entry))) => to_js(&ctx, &entry.to_value()),
                Some(Ok(None)) => Ok(JsValue::new_undefined(ctx.clone())),
                Some(Err(e)) => Err(s.host_error(&ctx, e)),
            }
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "indexList",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, prefix: JsValue<'js>, opts: JsValue<'js>| {
                let prefix = if prefix.is_undefined() {
                    "/".to_owned()
                } else {
                    string_arg(&ctx, &prefix).ok_or_else(|| {
                        Exception::throw_type(&ctx, "index.list(prefix): prefix must be a string")
                    })?
                };
                let opts = list_options(&opts)?;
                match s.host.use_host(|h| h.list(&prefix, &opts)) {
                    None => Err(Exception::throw_internal(&ctx, "no host is attached")),
                    Some(Ok(entries)) => {
                        let arr = rquickjs::Array::new(ctx.clone())?;
                        for (i, e) in entries.iter().enumerate() {
                            arr.set(i, to_js(&ctx, &e.to_value())?)?;
                        }
                        Ok(arr.into_value())
                    }
                    Some(Err(e)) => Err(s.host_error(&ctx, e)),
                }
            },
        )?,
    )?;

    let s = shared.clone();
    o.set(
        "oplogLength",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, key: JsValue<'js>| {
            s.refuse_restricted(&ctx, "oplog.getLength()")?;
            let key = string_arg(&ctx, &key).unwrap_or_default();
            match s.host.use_host(|h| h.oplog_length(&key)) {
                None => Err(Exception::throw_internal(&ctx, "no host is attached")),
                Some(Ok(n)) => Ok(n as f64),
                Some(Err(e)) => Err(s.host_error(&ctx, e)),
            }
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "oplogGet",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, key: JsValue<'js>, seq: JsValue<'js>| {
                s.refuse_restricted(&ctx, "oplog.get()")?;
                let key = string_arg(&ctx, &key).unwrap_or_default();
                let seq = seq
                    .as_number()
                    .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0)
                    .ok_or_else(|| {
                        Exception::throw_type(
                            &ctx,
                            "oplog.get(seq): seq must be a non-negative integer",
                        )
                    })? as u64;
                match s.host.use_host(|h| h.oplog_get(&key, seq)) {
                    None => Err(Exception::throw_internal(&ctx, "no host is attached")),
                    Some(Ok(value)) => {
                        let entry = crate::codec::Object::new()
                            .with("seq", Value::Number(seq as f64))
                            .with("value", value);
                        to_js(&ctx, &Value::Object(entry))
                    }
                    Some(Err(e)) => Err(s.host_error(&ctx, e)),
                }
            },
        )?,
    )?;

    let s = shared.clone();
    o.set(
        "listOplogs",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
            s.refuse_restricted(&ctx, "listOplogs()")?;
            match s.host.use_host(|h| h.list_oplogs()) {
                None => Err(Exception::throw_internal(&ctx, "no host is attached")),
                Some(Ok(keys)) => Ok(keys),
                Some(Err(e)) => Err(s.host_error(&ctx, e)),
            }
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "emit",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, value: JsValue<'js>| {
            if s.mode.get() != Mode::Method {
                return Err(Exception::throw_message(
                    &ctx,
                    &format!("emit() is not available during {}", s.mode.get().name()),
                ));
            }
            let v = s.to_value(&ctx, &value, "emit()")?;
            s.emitted.borrow_mut().push(v);
            Ok(())
        })?
        .with_name("emit")?,
    )?;

    let tx_closed = |ctx: &Ctx<'js>| {
        Exception::throw_message(ctx, "tx can only be used while its apply() runs")
    };
    let key_arg = |ctx: &Ctx<'js>, v: &JsValue<'js>| {
        string_arg(ctx, v)
            .ok_or_else(|| Exception::throw_message(ctx, "A key string parameter must be supplied"))
    };

    let s = shared.clone();
    o.set(
        "txGet",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, key: JsValue<'js>| {
            let key = key_arg(&ctx, &key)?;
            let found = {
                let actions = s.actions.borrow();
                let Some(actions) = actions.as_ref() else {
                    return Err(tx_closed(&ctx));
                };
                actions
                    .get(&key)
                    .map_err(|m| Exception::throw_message(&ctx, &m))?
                    .map(Action::to_value)
            };
            match found {
                Some(v) => to_js(&ctx, &v),
                None => Ok(JsValue::new_undefined(ctx.clone())),
            }
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "txPut",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, key: JsValue<'js>, value: JsValue<'js>| {
                let key = key_arg(&ctx, &key)?;
                if s.actions.borrow().is_none() {
                    return Err(tx_closed(&ctx));
                }
                let value = s.to_value(&ctx, &value, "tx.put()")?;
                let mut actions = s.actions.borrow_mut();
                let actions = actions.as_mut().ok_or_else(|| tx_closed(&ctx))?;
                actions
                    .put(&key, value)
                    .map_err(|m| Exception::throw_message(&ctx, &m))
            },
        )?,
    )?;

    let s = shared.clone();
    o.set(
        "txDelete",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, key: JsValue<'js>| {
            let key = key_arg(&ctx, &key)?;
            let mut actions = s.actions.borrow_mut();
            let actions = actions.as_mut().ok_or_else(|| tx_closed(&ctx))?;
            actions
                .delete(&key)
                .map_err(|m| Exception::throw_message(&ctx, &m))
        })?,
    )?;

    let s = shared.clone();
    o.set(
        "txSystem",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, kind: String, arg: JsValue<'js>| {
                let arg = string_arg(&ctx, &arg);
                let action = match kind.as_str() {
                    "addOplog" | "removeOplog" => {
                        let Some(key) = arg.filter(|k| is_hex_key(k)) else {
                            return Err(Exception::throw_message(
                                &ctx,
                                &format!("Must pass a valid {{pubkey}} string to {kind}"),
                            ));
                        };
                        if kind == "addOplog" {
                            Action::AddOplog(key)
                        } else {
                            Action::RemoveOplog(key)
                        }
                    }
                    _ => {
                        let Some(code) = arg else {
                            return Err(Exception::throw_message(
                                &ctx,
                                "Must pass a valid {code} string to setContractSource",
                            ));
                        };
                        Action::SetContractSource(code)
                    }
                };
                let mut actions = s.actions.borrow_mut();
                let actions = actions.as_mut().ok_or_else(|| tx_closed(&ctx))?;
                actions.system(action);
                Ok(())
            },
        )?,
    )?;

    Ok(o)
}
