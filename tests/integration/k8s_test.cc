// The Kubernetes chart (packaging/helm/strata) rendered with its default
// values and with options on, as `helm template` renders it (helm is not in
// Debian: tests/k8s/render.go runs the templates on Go's text/template, the
// engine Helm uses), yamllint clean, and read back as the objects a node
// agent needs. The plain manifests must equal the default rendering.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

using namespace strata::it;
using nlohmann::json;

namespace {

// The chart rendered with `values` ("" = its defaults), as JSON documents.
json Render(const std::string& values, std::string* yaml = nullptr) {
  CmdResult r = Run("bash tests/k8s/render-chart.sh " + values + " 2>&1");
  INFO(r.out);
  REQUIRE(r.code == 0);
  TempDir t;
  std::ofstream(t.path + "/out.yaml") << r.out;
  CmdResult lint = Run("yamllint -c packaging/.yamllint " + t.path + "/out.yaml");
  INFO(lint.out);
  CHECK(lint.code == 0);
  CmdResult j = Run("/usr/bin/python3 -c 'import json, sys, yaml; "
                    "json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)' " +
                    t.path + "/out.yaml");
  INFO(j.out);
  REQUIRE(j.code == 0);
  if (yaml != nullptr) *yaml = r.out;
  return json::parse(j.out);
}

const json* Find(const json& docs, const std::string& kind, const std::string& name) {
  for (const json& d : docs)
    if (d["kind"] == kind && d["metadata"]["name"] == name) return &d;
  return nullptr;
}

const json* Named(const json& list, const std::string& name) {
  for (const json& x : list)
    if (x.value("name", "") == name) return &x;
  return nullptr;
}

}  // namespace

TEST_CASE("the Helm chart renders to a DaemonSet whose mount reaches the node, a headless Service to join, "
          "ConfigMaps, probes; yamllint clean; the plain manifests match",
          "[k8s]") {
  CmdResult lint = Run("yamllint -c packaging/.yamllint packaging/helm/strata/Chart.yaml "
                       "packaging/helm/strata/values.yaml packaging/kubernetes/strata.yaml");
  INFO(lint.out);
  CHECK(lint.code == 0);

  std::string yaml;
  json docs = Render("", &yaml);
  // packaging/kubernetes/strata.yaml is this rendering behind its comment.
  std::string plain = ReadFile("packaging/kubernetes/strata.yaml");
  CHECK(plain.substr(plain.find("---\n")) == yaml);

  const json* ds = Find(docs, "DaemonSet", "strata");
  REQUIRE(ds != nullptr);
  CHECK((*ds)["apiVersion"] == "apps/v1");
  const json& pod = (*ds)["spec"]["template"]["spec"];
  for (const auto& [k, v] : (*ds)["spec"]["selector"]["matchLabels"].items())
    CHECK((*ds)["spec"]["template"]["metadata"]["labels"][k] == v);
  const json* agent = Named(pod["containers"], "agent");
  REQUIRE(agent != nullptr);
  // The mount: made in the container, propagated to the node's hostPath.
  const json* mount = Named((*agent)["volumeMounts"], "mount");
  REQUIRE(mount != nullptr);
  CHECK((*mount)["mountPropagation"] == "Bidirectional");
  CHECK((*mount)["mountPath"] == "/mnt/strata");
  const json* mount_vol = Named(pod["volumes"], "mount");
  REQUIRE(mount_vol != nullptr);
  CHECK((*mount_vol)["hostPath"]["path"] == "/mnt/strata");
  const json* fuse = Named(pod["volumes"], "fuse");
  REQUIRE(fuse != nullptr);
  CHECK((*fuse)["hostPath"]["path"] == "/dev/fuse");
  CHECK((*fuse)["hostPath"]["type"] == "CharDevice");
  CHECK((*agent)["securityContext"]["privileged"] == true);  // Bidirectional needs it
  // Probes on the agent's health endpoints, on the metrics port.
  CHECK((*agent)["livenessProbe"]["httpGet"]["path"] == "/healthz");
  CHECK((*agent)["readinessProbe"]["httpGet"]["path"] == "/readyz");
  CHECK((*agent)["livenessProbe"]["httpGet"]["port"] == "metrics");
  CHECK(Named((*agent)["ports"], "metrics") != nullptr);
  // preStop unmounts.
  std::string pre = (*agent)["lifecycle"]["preStop"]["exec"]["command"].dump();
  CHECK(pre.find("fusermount3 -u -z /mnt/strata") != std::string::npos);
  // A stale mount is cleared before the agent starts.
  REQUIRE(pod["initContainers"].size() == 1);
  CHECK(pod["initContainers"][0]["command"][0] == "/usr/lib/strata/strata-clear-stale-mount");
  // It joins the others through the headless Service's DNS name.
  std::string args = (*agent)["args"].dump();
  CHECK(args.find("--join=dns:strata.strata.svc:7946") != std::string::npos);
  CHECK(args.find("--cluster-advertise=$(POD_IP):7946") != std::string::npos);
  CHECK(args.find("--config=/etc/strata/agent.conf") != std::string::npos);
  const json* svc = Find(docs, "Service", "strata");
  REQUIRE(svc != nullptr);
  CHECK((*svc)["spec"]["clusterIP"] == "None");
  CHECK((*svc)["spec"]["publishNotReadyAddresses"] == true);
  for (const auto& [k, v] : (*svc)["spec"]["selector"].items()) CHECK((*ds)["spec"]["template"]["metadata"]["labels"][k] == v);
  bool udp = false;
  for (const json& p : (*svc)["spec"]["ports"]) udp |= p["protocol"] == "UDP" && p["port"] == 7946;
  CHECK(udp);
  // The config and the policies come from ConfigMaps the pod mounts.
  const json* conf = Find(docs, "ConfigMap", "strata-config");
  REQUIRE(conf != nullptr);
  std::string agent_conf = (*conf)["data"]["agent.conf"];
  CHECK(agent_conf.find("mount-point = \"/mnt/strata\"") != std::string::npos);
  CHECK(agent_conf.find("ufs = [\"s3://my-bucket/datasets\"]") != std::string::npos);
  CHECK(agent_conf.find("metrics-addr = \"0.0.0.0:9464\"") != std::string::npos);
  CHECK(Find(docs, "ConfigMap", "strata-policies") != nullptr);
  CHECK((*Named(pod["volumes"], "config"))["configMap"]["name"] == "strata-config");
  CHECK((*Named(pod["volumes"], "cluster-key"))["secret"]["secretName"] == "strata-cluster-key");
  // Optional parts are off by default.
  CHECK(Find(docs, "ServiceMonitor", "strata") == nullptr);
  CHECK(Find(docs, "Secret", "strata-cluster") == nullptr);

  // The agent accepts the rendered config file: it fails on the mount
  // point (not there on this machine), not on a key it does not know.
  TempDir t;
  std::ofstream(t.path + "/agent.conf") << agent_conf;
  CmdResult start = Run("build/strata-agent --config " + t.path + "/agent.conf --mount-point " + t.path +
                        "/no-such-dir --ufs file://" + t.path + " --cache-dir " + t.path + "/c");
  INFO(start.out);
  CHECK(start.out.find("mount point " + t.path + "/no-such-dir") != std::string::npos);

  // With a ServiceMonitor, a key of its own and store credentials.
  std::ofstream(t.path + "/values.yaml")
      << ReadFile("packaging/helm/strata/values.yaml")
      << "\nserviceMonitor:\n  enabled: true\n  interval: 15s\n"
         "credentialsSecret: s3-creds\n";
  std::string with = ReadFile(t.path + "/values.yaml");
  with.replace(with.find("  key: \"\""), 9, "  key: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"");
  std::ofstream(t.path + "/values.yaml") << with;
  json more = Render(t.path + "/values.yaml");
  const json* sm = Find(more, "ServiceMonitor", "strata");
  REQUIRE(sm != nullptr);
  CHECK((*sm)["spec"]["endpoints"][0]["port"] == "metrics");
  CHECK((*sm)["spec"]["endpoints"][0]["interval"] == "15s");
  const json* secret = Find(more, "Secret", "strata-cluster");
  REQUIRE(secret != nullptr);
  CHECK((*secret)["stringData"]["keys"] == "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
  const json& pod2 = (*Find(more, "DaemonSet", "strata"))["spec"]["template"]["spec"];
  CHECK((*Named(pod2["volumes"], "cluster-key"))["secret"]["secretName"] == "strata-cluster");
  CHECK((*Named(pod2["containers"], "agent"))["envFrom"][0]["secretRef"]["name"] == "s3-creds");
}
