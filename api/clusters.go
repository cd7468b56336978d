package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// ClusterFields are the settable fields of a cluster.
type ClusterFields struct {
	Description    string `json:"description,omitempty" maxLength:"4096" example:"Rack 1, row B"`
	DefaultProfile string `json:"default_profile,omitempty" maxLength:"64" example:"debian-netboot" doc:"Profile used when an approval names none; must exist"`
	BMCUser        bool   `json:"bmc_user,omitempty" doc:"Every approval into this cluster has the discovery OS create a BMC user for the appliance in band"`
}

// ClusterCreate is the body that creates a cluster.
type ClusterCreate struct {
	Name string `json:"name" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"rack1"`
	ClusterFields
}

type namePath struct {
	Name string `path:"name" maxLength:"64" example:"rack1"`
}

type clusterOut struct{ Body Cluster }

func (s *Server) registerClusters() {
	register(s, accessRead, huma.Operation{
		OperationID: "list-clusters", Method: http.MethodGet, Path: Prefix + "/clusters",
		Summary: "List clusters", Tags: []string{"clusters"},
	}, func(context.Context, *struct{}) (*struct{ Body []Cluster }, error) {
		return listed(s, "clusters", s.Store.ListClusters, clusterView)
	})
	register(s, accessRead, huma.Operation{
		OperationID: "get-cluster", Method: http.MethodGet, Path: Prefix + "/clusters/{name}",
		Summary: "Get a cluster", Tags: []string{"clusters"}, Errors: []int{http.StatusNotFound},
	}, func(_ context.Context, in *namePath) (*clusterOut, error) {
		c, err := s.Store.GetCluster(in.Name)
		if err != nil {
			return nil, s.storeErr(err, "cluster "+in.Name, "path.name")
		}
		return &clusterOut{Body: clusterView(c)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "create-cluster", Method: http.MethodPost, Path: Prefix + "/clusters",
		Summary: "Create a cluster", Tags: []string{"clusters"}, DefaultStatus: http.StatusCreated,
		Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct{ Body ClusterCreate }) (*clusterOut, error) {
		if err := s.checkDefaultProfile(in.Body.DefaultProfile); err != nil {
			return nil, err
		}
		c, err := s.Store.CreateCluster(store.Cluster{Name: in.Body.Name, Description: in.Body.Description,
			DefaultProfile: strings.TrimSpace(in.Body.DefaultProfile), BMCUser: in.Body.BMCUser},
			store.Audit{Actor: caller(ctx).Actor, Action: "cluster-create", Detail: in.Body.Name})
		if err != nil {
			return nil, s.storeErr(err, "cluster "+in.Body.Name, "body.name")
		}
		return &clusterOut{Body: clusterView(c)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "update-cluster", Method: http.MethodPut, Path: Prefix + "/clusters/{name}",
		Summary: "Replace a cluster's settings", Tags: []string{"clusters"},
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"64" example:"rack1"`
		Body ClusterFields
	}) (*clusterOut, error) {
		if err := s.checkDefaultProfile(in.Body.DefaultProfile); err != nil {
			return nil, err
		}
		c, err := s.Store.UpdateCluster(in.Name, store.Audit{Actor: caller(ctx).Actor, Action: "cluster-update", Detail: in.Name},
			func(c *store.Cluster) error {
				c.Description, c.DefaultProfile = in.Body.Description, strings.TrimSpace(in.Body.DefaultProfile)
				c.BMCUser = in.Body.BMCUser
				return nil
			})
		if err != nil {
			return nil, s.storeErr(err, "cluster "+in.Name, "body")
		}
		return &clusterOut{Body: clusterView(c)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "delete-cluster", Method: http.MethodDelete, Path: Prefix + "/clusters/{name}",
		Summary: "Delete an unused cluster", Tags: []string{"clusters"}, DefaultStatus: http.StatusNoContent,
		Description: "A cluster that a machine belongs to cannot be deleted (409).",
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *namePath) (*struct{}, error) {
		err := s.Store.DeleteCluster(in.Name, store.Audit{Actor: caller(ctx).Actor, Action: "cluster-delete", Detail: in.Name})
		return nil, s.storeErr(err, "cluster "+in.Name, "path.name")
	})
}

func (s *Server) checkDefaultProfile(name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil
	}
	if _, err := s.Store.GetProfile(name); err != nil {
		return fieldErr("body.default_profile", "no such profile", name)
	}
	return nil
}
